using Limen.Features.Outcomes;
using Limen.Web;

namespace Limen.Ui.Components;

/// <summary>A failure as a page shows it: the same words and field the API's problem+json carries (one mapping, <see cref="FailureProblems"/>).</summary>
public static class FailureText
{
    /// <summary>The request field (API name) the failure is about, when it is about one.</summary>
    public static string? Field(this Failure failure) => failure is Invalid invalid ? invalid.Field : null;

    public static string Detail(this Failure failure)
    {
        var problem = failure.ToProblem().ProblemDetails;
        return problem.Detail ?? problem.Title ?? "The request was refused.";
    }
}
