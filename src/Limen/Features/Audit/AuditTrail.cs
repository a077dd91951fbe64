using System.Text.Json;
using Limen.Data;
using Limen.Web;
using Microsoft.EntityFrameworkCore;

namespace Limen.Features.Audit;

public static class AuditResults
{
    public const string Success = "success";
    public const string Failure = "failure";
    public const string Denied = "denied";
}

public static class AuditActions
{
    /// <summary>One row standing for the anonymous acts a client sent over its budget in one window.</summary>
    public const string Suppressed = "audit.suppressed";
}

/// <summary>One audited act. Actor, request id, client IP and user agent come from the request.</summary>
public sealed record AuditEvent(
    string Action,
    string Result,
    string? TargetType = null,
    string? TargetId = null,
    string? ErrorCode = null,
    object? Details = null,
    Guid? UserId = null,
    string? Username = null);

/// <summary>
/// Writes audit rows through a context of its own, so a failed operation whose own changes are
/// thrown away is still recorded. Anonymous acts go through <see cref="AnonymousAuditBudget"/>.
/// </summary>
public sealed class AuditTrail(
    IDbContextFactory<LimenDbContext> dbFactory,
    IHttpContextAccessor httpContextAccessor,
    AnonymousAuditBudget anonymousBudget,
    TimeProvider clock,
    ILogger<AuditTrail> logger)
{
    private static readonly JsonSerializerOptions DetailsJson = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
    };

    public async Task RecordAsync(AuditEvent auditEvent, CancellationToken cancellationToken = default)
    {
        var http = httpContextAccessor.HttpContext;
        var row = Row(auditEvent);

        // Anonymous: a request that proved no identity, about an act that names no user. Anybody can
        // send those, so they are budgeted per client; what is over budget is counted, not written.
        if (http is not null && row.UserId is null && !anonymousBudget.TryAdmit(row.ClientIp ?? "unknown", row.Action, row.Time))
        {
            return;
        }

        await WriteAsync(row, cancellationToken);
    }

    /// <summary>The aggregate row for what <see cref="AnonymousAuditBudget"/> held back in one window.</summary>
    public Task RecordSuppressedAsync(SuppressedAudit suppressed, CancellationToken cancellationToken) => WriteAsync(new AuditLog
    {
        Time = suppressed.WindowEnd,
        Action = AuditActions.Suppressed,
        Result = AuditResults.Denied,
        ErrorCode = "rate_limited",
        ClientIp = suppressed.ClientIp,
        Details = JsonSerializer.Serialize(new
        {
            window_start = suppressed.WindowStart,
            window_end = suppressed.WindowEnd,
            count = suppressed.Count,
            actions = suppressed.Actions,
        }, DetailsJson),
    }, cancellationToken);

    private async Task WriteAsync(AuditLog row, CancellationToken cancellationToken)
    {
        try
        {
            await using var db = await dbFactory.CreateDbContextAsync(cancellationToken);
            db.AuditLogs.Add(row);
            await db.SaveChangesAsync(cancellationToken);
        }
        catch (Exception e) when (ProblemExceptionHandler.IsDatabaseUnavailable(e))
        {
            // The act itself fails with 503 in this case; the log keeps what the table could not.
            logger.LogWarning("Audit row not written (database unavailable): {Action} {Result} {TargetType} {TargetId}",
                row.Action, row.Result, row.TargetType, row.TargetId);
        }
    }

    /// <summary>
    /// The row for <paramref name="auditEvent"/>, for a caller to add to its own context: the act's
    /// outcome and its audit row then commit together, so a crash cannot keep one without the other.
    /// </summary>
    public AuditLog Row(AuditEvent auditEvent)
    {
        var http = httpContextAccessor.HttpContext;
        return new AuditLog
        {
            Time = clock.GetUtcNow(),
            RequestId = http?.TraceIdentifier,
            UserId = auditEvent.UserId ?? http?.User.FindUserId(),
            Username = auditEvent.Username ?? http?.User.FindUsername(),
            Action = auditEvent.Action,
            TargetType = auditEvent.TargetType,
            TargetId = auditEvent.TargetId,
            Result = auditEvent.Result,
            ErrorCode = auditEvent.ErrorCode,
            ClientIp = http?.Connection.RemoteIpAddress?.ToString(),
            UserAgent = Truncate(http?.Request.Headers.UserAgent.ToString(), 512),
            Details = auditEvent.Details is null ? null : JsonSerializer.Serialize(auditEvent.Details, DetailsJson),
        };
    }

    private static string? Truncate(string? value, int max) =>
        string.IsNullOrEmpty(value) ? null : value.Length <= max ? value : value[..max];
}
