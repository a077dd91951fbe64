using System.Security.Claims;
using Limen.Data;
using Limen.Features.Outcomes;
using Limen.Web;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace Limen.Features.Audit;

public sealed record AuditQuery(
    [property: FromQuery(Name = "user_id")] Guid? UserId,
    [property: FromQuery(Name = "action")] string? Action,
    [property: FromQuery(Name = "target_type")] string? TargetType,
    [property: FromQuery(Name = "target_id")] string? TargetId,
    [property: FromQuery(Name = "result")] string? Result,
    [property: FromQuery(Name = "from")] DateTimeOffset? From,
    [property: FromQuery(Name = "to")] DateTimeOffset? To);

public sealed record AuditEntryResponse(
    long Id, DateTimeOffset Time, string? RequestId, Guid? UserId, string? Username, string Action, string? TargetType,
    string? TargetId, string Result, string? ErrorCode, string? ClientIp, string? UserAgent, System.Text.Json.JsonElement? Details);

public static class AuditEndpoints
{
    public static IEndpointRouteBuilder MapAudit(this IEndpointRouteBuilder routes)
    {
        routes.MapGet("/api/audit", List).WithTags("Audit");
        return routes;
    }

    private static async Task<Results<Ok<PagedList<AuditEntryResponse>>, ProblemHttpResult>> List(
        [AsParameters] AuditQuery query, [AsParameters] PageRequest page, HttpContext http, LimenDbContext db,
        CancellationToken cancellationToken) =>
        (await ListAsync(db, query, page, http.User, cancellationToken)).ToResult(TypedResults.Ok);

    /// <summary>
    /// The one audit query, for the API and the admin page: admins read the whole trail, everybody
    /// else only the rows about their own acts. Newest first.
    /// </summary>
    public static async Task<Outcome<PagedList<AuditEntryResponse>>> ListAsync(
        LimenDbContext db, AuditQuery query, PageRequest page, ClaimsPrincipal caller, CancellationToken cancellationToken)
    {
        if (page.Validate() is { } problem)
        {
            return new Invalid(problem.Field, problem.Detail);
        }

        if (query.From is { } from && query.To is { } to && from > to)
        {
            return new Invalid("from", "from must not be after to.");
        }

        var rows = db.AuditLogs.AsNoTracking().Matching(query, caller);
        var total = await rows.CountAsync(cancellationToken);
        var items = await rows.OrderByDescending(a => a.Id).Skip(page.Skip).Take(page.Size).ToListAsync(cancellationToken);
        return new PagedList<AuditEntryResponse>(items.ConvertAll(ToResponse), total, page.Number, page.Size);
    }

    /// <summary>
    /// The rows <paramref name="query"/> asks for that <paramref name="caller"/> may read: admins the
    /// whole trail, everybody else only the rows about their own acts. The API's list and the VM page use it.
    /// </summary>
    public static IQueryable<AuditLog> Matching(this IQueryable<AuditLog> rows, AuditQuery query, ClaimsPrincipal caller)
    {
        var userId = caller.IsAdmin() ? query.UserId : caller.GetUserId();
        if (userId is { } uid)
        {
            rows = rows.Where(a => a.UserId == uid);
        }

        if (query.Action is { } action)
        {
            rows = rows.Where(a => a.Action == action);
        }

        if (query.TargetType is { } targetType)
        {
            rows = rows.Where(a => a.TargetType == targetType);
        }

        if (query.TargetId is { } targetId)
        {
            rows = rows.Where(a => a.TargetId == targetId);
        }

        if (query.Result is { } result)
        {
            rows = rows.Where(a => a.Result == result);
        }

        // Any ISO 8601 offset is accepted; PostgreSQL's timestamptz takes instants in UTC.
        if (query.From is { } start)
        {
            var utcStart = start.ToUniversalTime();
            rows = rows.Where(a => a.Time >= utcStart);
        }

        if (query.To is { } end)
        {
            var utcEnd = end.ToUniversalTime();
            rows = rows.Where(a => a.Time <= utcEnd);
        }

        return rows;
    }

    public static AuditEntryResponse ToResponse(AuditLog a) => new(
        a.Id, a.Time, a.RequestId, a.UserId, a.Username, a.Action, a.TargetType, a.TargetId, a.Result, a.ErrorCode,
        a.ClientIp, a.UserAgent, a.Details is null ? null : System.Text.Json.JsonDocument.Parse(a.Details).RootElement);
}
