using Limen.Features.Outcomes;
using Limen.Web;

namespace Limen.Ui.Components;

/// <summary>A failure as a page shows it: the same words and field the API's problem+json carries (one mapping, <see cref="FailureProblems"/>).</summary>
public static class FailureText
{
    /// <summary>The request field (API name) the failure is about, when it is about one.</summary>
    public static string? Field(this Failure failure) => failure switch
    {
        Invalid invalid => invalid.Field,
        // A taken name is the name field's problem on a form, though the API answers it as a 409 without a field.
        Conflict conflict => conflict.Field,
        _ => null,
    };

    public static string Detail(this Failure failure)
    {
        var problem = failure.ToProblem().ProblemDetails;
        return problem.Detail ?? problem.Title ?? "The request was refused.";
    }
}
