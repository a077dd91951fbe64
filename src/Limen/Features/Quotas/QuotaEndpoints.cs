using Limen.Data;
using Limen.Features.Audit;
using Limen.Web;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

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
        Guid id, QuotaUpdateRequest request, LimenDbContext db, QuotaService quotas, AuditTrail audit, TimeProvider clock, CancellationToken cancellationToken)
    {
        if (Problem(request) is { } problem)
        {
            return problem;
        }

        if (!await db.Users.AnyAsync(u => u.Id == id, cancellationToken))
        {
            return Problems.NotFoundProblem("The user");
        }

        var row = await db.UserQuotas.FirstOrDefaultAsync(q => q.UserId == id, cancellationToken);
        if (row is null)
        {
            row = new UserQuota { UserId = id };
            db.UserQuotas.Add(row);
        }

        Apply(row, request, clock);
        await db.SaveChangesAsync(cancellationToken);
        await audit.RecordAsync(new AuditEvent("quota.user.update", AuditResults.Success, "user", id.ToString(), Details: request), cancellationToken);
        return TypedResults.Ok(await quotas.UserViewAsync(id, cancellationToken));
    }

    private static async Task<Results<Ok<QuotaScopeView>, ProblemHttpResult>> UpdateSystem(
        QuotaUpdateRequest request, LimenDbContext db, QuotaService quotas, AuditTrail audit, TimeProvider clock, CancellationToken cancellationToken)
    {
        if (Problem(request) is { } problem)
        {
            return problem;
        }

        var row = await db.SystemQuotas.FirstOrDefaultAsync(q => q.Id == SystemQuota.SingletonId, cancellationToken);
        if (row is null)
        {
            row = new SystemQuota { Id = SystemQuota.SingletonId };
            db.SystemQuotas.Add(row);
        }

        Apply(row, request, clock);
        await db.SaveChangesAsync(cancellationToken);
        await audit.RecordAsync(new AuditEvent("quota.system.update", AuditResults.Success, "system", null, Details: request), cancellationToken);
        return TypedResults.Ok(await quotas.SystemViewAsync(cancellationToken));
    }

    private static async Task<Results<Ok<QuotaScopeView>, ProblemHttpResult>> ResetUser(
        Guid id, string? limit, QuotaService quotas, AuditTrail audit, CancellationToken cancellationToken)
    {
        if (UnknownLimit(limit) is { } problem)
        {
            return problem;
        }

        if (await quotas.ResetUserAsync(id, limit, cancellationToken) is not { } previous)
        {
            return Problems.NotFoundProblem("The user");
        }

        await audit.RecordAsync(new AuditEvent("quota.user.reset", AuditResults.Success, "user", id.ToString(),
            Details: new { limit, previous }), cancellationToken);
        return TypedResults.Ok(await quotas.UserViewAsync(id, cancellationToken));
    }

    private static async Task<Results<Ok<QuotaScopeView>, ProblemHttpResult>> ResetSystem(
        string? limit, QuotaService quotas, AuditTrail audit, CancellationToken cancellationToken)
    {
        if (UnknownLimit(limit) is { } problem)
        {
            return problem;
        }

        var previous = await quotas.ResetSystemAsync(limit, cancellationToken);
        await audit.RecordAsync(new AuditEvent("quota.system.reset", AuditResults.Success, "system", null,
            Details: new { limit, previous }), cancellationToken);
        return TypedResults.Ok(await quotas.SystemViewAsync(cancellationToken));
    }

    private static ProblemHttpResult? UnknownLimit(string? limit) =>
        limit is null || QuotaService.LimitNames.Contains(limit) ? null
            : Problems.Create(404, Problems.NotFound, "Not found",
                $"There is no quota limit '{limit}'; limits are {string.Join(", ", QuotaService.LimitNames)}.");

    private static void Apply(QuotaLimits row, QuotaUpdateRequest request, TimeProvider clock)
    {
        row.MaxVms = request.MaxVms ?? row.MaxVms;
        row.MaxVcpus = request.MaxVcpus ?? row.MaxVcpus;
        row.MaxMemoryMb = request.MaxMemoryMb ?? row.MaxMemoryMb;
        row.MaxDiskGb = request.MaxDiskGb ?? row.MaxDiskGb;
        row.MaxSnapshots = request.MaxSnapshots ?? row.MaxSnapshots;
        row.UpdatedAt = clock.GetUtcNow();
    }

    private static ProblemHttpResult? Problem(QuotaUpdateRequest request)
    {
        foreach (var (field, value) in new[]
        {
            ("max_vms", request.MaxVms), ("max_vcpus", request.MaxVcpus), ("max_memory_mb", request.MaxMemoryMb),
            ("max_disk_gb", request.MaxDiskGb), ("max_snapshots", request.MaxSnapshots),
        })
        {
            if (value is < 0 or > QuotaService.MaxLimit)
            {
                return Problems.Invalid(field, $"{field} must be between 0 and {QuotaService.MaxLimit}.");
            }
        }

        return null;
    }
}
