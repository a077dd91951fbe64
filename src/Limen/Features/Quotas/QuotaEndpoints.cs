using Limen.Web;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Limen.Features.Quotas;

/// <summary>Any subset of limits; an absent (or null) field keeps its current value.</summary>
public sealed record QuotaUpdateRequest(int? MaxVms = null, int? MaxVcpus = null, int? MaxMemoryMb = null, int? MaxDiskGb = null, int? MaxSnapshots = null);

public sealed record QuotaResponse(QuotaLimitsView Limits, QuotaUsageView Usage, QuotaScopeView? System);

public static class QuotaEndpoints
{
    public static IEndpointRouteBuilder MapQuotas(this IEndpointRouteBuilder routes)
    {
        routes.MapGet("/api/quota", Get).WithTags("Quotas");
        routes.MapPut("/api/admin/users/{id:guid}/quota", UpdateUser).WithTags("Quotas").RequireAuthorization(Policies.Admin);
        routes.MapPut("/api/admin/quota", UpdateSystem).WithTags("Quotas").RequireAuthorization(Policies.Admin);
        // An override is a resource of its own: deleting it (all of them, or one limit) brings back the derived default.
        routes.MapDelete("/api/admin/users/{id:guid}/quota/{limit?}", ResetUser).WithTags("Quotas").RequireAuthorization(Policies.Admin);
        routes.MapDelete("/api/admin/quota/{limit?}", ResetSystem).WithTags("Quotas").RequireAuthorization(Policies.Admin);
        return routes;
    }

    /// <summary>The caller's limits and usage; admins also see the system's.</summary>
    private static async Task<Ok<QuotaResponse>> Get(HttpContext http, QuotaService quotas, CancellationToken cancellationToken)
    {
        var own = await quotas.UserViewAsync(http.User.GetUserId(), cancellationToken);
        var system = http.User.IsAdmin() ? await quotas.SystemViewAsync(cancellationToken) : null;
        return TypedResults.Ok(new QuotaResponse(own.Limits, own.Usage, system));
    }

    private static async Task<Results<Ok<QuotaScopeView>, ProblemHttpResult>> UpdateUser(
        Guid id, QuotaUpdateRequest request, QuotaService quotas, CancellationToken cancellationToken) =>
        (await quotas.SetUserAsync(id, request, cancellationToken)).ToResult(TypedResults.Ok);

    private static async Task<Results<Ok<QuotaScopeView>, ProblemHttpResult>> UpdateSystem(
        QuotaUpdateRequest request, QuotaService quotas, CancellationToken cancellationToken) =>
        (await quotas.SetSystemAsync(request, cancellationToken)).ToResult(TypedResults.Ok);

    private static async Task<Results<Ok<QuotaScopeView>, ProblemHttpResult>> ResetUser(
        Guid id, string? limit, QuotaService quotas, CancellationToken cancellationToken) =>
        UnknownLimit(limit) ?? (await quotas.ResetUserAsync(id, limit, cancellationToken)).ToResult(TypedResults.Ok);

    private static async Task<Results<Ok<QuotaScopeView>, ProblemHttpResult>> ResetSystem(
        string? limit, QuotaService quotas, CancellationToken cancellationToken) =>
        UnknownLimit(limit) ?? (await quotas.ResetSystemAsync(limit, cancellationToken)).ToResult(TypedResults.Ok);

    private static ProblemHttpResult? UnknownLimit(string? limit) =>
        limit is null || QuotaService.LimitNames.Contains(limit) ? null
            : Problems.Create(404, Problems.NotFound, "Not found",
                $"There is no quota limit '{limit}'; limits are {string.Join(", ", QuotaService.LimitNames)}.");
}
