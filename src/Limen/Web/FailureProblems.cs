using Limen.Features.Outcomes;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Limen.Web;

/// <summary>
/// The one mapping of domain failures to problem+json (docs/api.md, "Errors"): status, type, title,
/// detail and the extension members clients read (<c>field</c>, <c>state</c>, the quota numbers).
/// </summary>
public static class FailureProblems
{
    public static ProblemHttpResult ToProblem(this Failure failure) => failure switch
    {
        Features.Outcomes.NotFound f => Problems.NotFoundProblem(f.What),
        Invalid f => Problems.Invalid(f.Field, f.Detail),
        InvalidState f => Problems.Create(409, Problems.InvalidState, "Invalid state", f.Detail, State(f.State)),
        QuotaDenied f => Problems.Create(403, Problems.QuotaExceeded, "Quota exceeded",
            $"This needs {f.Requested} more {f.Resource}; {f.Used} of {(f.Scope == "user" ? "your" : "the system's")} limit of {f.Limit} are in use.",
            new Dictionary<string, object?>
            {
                ["resource"] = f.Resource,
                ["requested"] = f.Requested,
                ["used"] = f.Used,
                ["limit"] = f.Limit,
                ["scope"] = f.Scope,
            }),
        Features.Outcomes.Conflict f => Problems.ConflictProblem(f.Detail),
        OperationFailed f => Problems.Create(409, Problems.VmOperationFailed, f.Title, f.Detail, f.State is null ? null : State(f.State)),
        RolledBack f => Problems.Create(500, Problems.VmOperationFailed, f.Title, f.Detail),
        InsufficientStorage f => Problems.DiskFull(f.What),
        InsufficientCapacity f => Problems.Create(409, Problems.InsufficientCapacity, "Insufficient capacity", f.Detail),
        RegistrationClosed => Problems.Create(403, Problems.RegistrationClosed, "Registration closed",
            "This server does not take registrations; ask an administrator for an account."),
        // The endpoint sets Retry-After (Problems.SetRetryAfter): a problem result carries no headers.
        Throttled => Problems.Create(429, Problems.RateLimited, "Too many attempts", "Too many attempts from this client; wait and try again."),
        _ => throw new ArgumentOutOfRangeException(nameof(failure), failure, "A failure without an HTTP mapping."),
    };

    /// <summary>The success answer <paramref name="ok"/> builds from the value, or the failure's problem.</summary>
    public static Results<TOk, ProblemHttpResult> ToResult<T, TOk>(this Outcome<T> outcome, Func<T, TOk> ok)
        where TOk : IResult =>
        outcome.Failure is { } failure ? failure.ToProblem() : ok(outcome.Value);

    /// <summary>204 for an operation without a value (null failure), else the failure's problem.</summary>
    public static Results<NoContent, ProblemHttpResult> ToNoContent(this Failure? failure) =>
        failure is null ? TypedResults.NoContent() : failure.ToProblem();

    private static Dictionary<string, object?> State(string state) => new() { ["state"] = state };
}
