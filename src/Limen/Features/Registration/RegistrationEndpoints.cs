using Limen.Features.Outcomes;
using Limen.Features.Users;
using Limen.Web;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Limen.Features.Registration;

public sealed record RegisterRequest(string Username, string Password);

public static class RegistrationEndpoints
{
    public static IEndpointRouteBuilder MapRegistration(this IEndpointRouteBuilder routes)
    {
        routes.MapPost("/api/auth/register", Register).WithTags("Auth").AllowAnonymous();
        var admin = routes.MapGroup("/api/admin/registrations").WithTags("Registrations").RequireAuthorization(Policies.Admin);
        admin.MapGet("/", List);
        admin.MapPost("/{id:guid}/approve", Approve);
        admin.MapPost("/{id:guid}/reject", Reject);
        return routes;
    }

    /// <summary>202: the account exists but is not usable until an admin approves it.</summary>
    private static async Task<Results<Accepted<RegistrationView>, ProblemHttpResult>> Register(
        RegisterRequest request, HttpContext http, RegistrationService registrations, CancellationToken cancellationToken)
    {
        var clientIp = http.Connection.RemoteIpAddress?.ToString() ?? "unknown";
        var outcome = await registrations.RegisterAsync(request.Username, request.Password, clientIp, cancellationToken);
        if (outcome.Failure is Throttled throttled)
        {
            Problems.SetRetryAfter(http.Response, throttled.RetryAfter);
        }

        return outcome.ToResult(registration => TypedResults.Accepted((string?)null, registration));
    }

    private static async Task<Results<Ok<PagedList<RegistrationView>>, ProblemHttpResult>> List(
        [AsParameters] PageRequest page, RegistrationService registrations, CancellationToken cancellationToken)
    {
        if (page.Validate() is { } problem)
        {
            return Problems.Invalid(problem.Field, problem.Detail);
        }

        var (items, total) = await registrations.PendingAsync(page.Skip, page.Size, cancellationToken);
        return TypedResults.Ok(new PagedList<RegistrationView>(items, total, page.Number, page.Size));
    }

    private static async Task<Results<Ok<UserResponse>, ProblemHttpResult>> Approve(
        Guid id, RegistrationService registrations, CancellationToken cancellationToken) =>
        (await registrations.ApproveAsync(id, cancellationToken)).ToResult(TypedResults.Ok);

    private static async Task<Results<NoContent, ProblemHttpResult>> Reject(
        Guid id, RegistrationService registrations, CancellationToken cancellationToken) =>
        (await registrations.RejectAsync(id, cancellationToken)).ToNoContent();
}
