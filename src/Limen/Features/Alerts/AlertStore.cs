using System.Text.Json;
using Limen.Data;
using Limen.Features.Events;
using Microsoft.EntityFrameworkCore;

namespace Limen.Features.Alerts;

/// <summary>The data of alert.received.</summary>
public sealed record AlertReceived(string Fingerprint, string Alertname, string Status, string? Severity, DateTimeOffset StartsAt, string Receiver);

/// <summary>Upserts delivered alerts by (fingerprint, starts_at).</summary>
public static class AlertStore
{
    /// <summary>How many alerts are firing, and the <paramref name="latest"/> most recently received of them.</summary>
    public static async Task<(int Count, IReadOnlyList<Alert> Latest)> FiringAsync(LimenDbContext db, int latest, CancellationToken cancellationToken)
    {
        var firing = db.Alerts.AsNoTracking().Where(a => a.Status == AlertmanagerPayload.Firing);
        return (await firing.CountAsync(cancellationToken),
            await firing.OrderByDescending(a => a.LastReceivedAt).ThenByDescending(a => a.Id).Take(latest).ToListAsync(cancellationToken));
    }

    /// <summary>
    /// One transaction per delivery: all of its alerts are stored or none. The latest delivery
    /// decides status and labels; a replay changes nothing but count and last_received_at. Each
    /// alert delivered is told as alert.received (admins only), committed with the rows.
    /// </summary>
    public static async Task StoreAsync(LimenDbContext db, EventOutlet events, AlertmanagerPayload payload, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        foreach (var alert in payload.Alerts)
        {
            var labels = JsonSerializer.Serialize(alert.Labels);
            var annotations = JsonSerializer.Serialize(alert.Annotations);
            DateTimeOffset? endsAt = alert.Status == AlertmanagerPayload.Resolved ? alert.EndsAt.ToUniversalTime() : null;
            var generatorUrl = string.IsNullOrEmpty(alert.GeneratorUrl) ? null : alert.GeneratorUrl;
            await db.Database.ExecuteSqlAsync($"""
                INSERT INTO alerts (fingerprint, starts_at, ends_at, status, alertname, receiver, labels, annotations,
                                    generator_url, first_received_at, last_received_at, count)
                VALUES ({alert.Fingerprint}, {alert.StartsAt.ToUniversalTime()}, {endsAt}, {alert.Status}, {alert.Alertname},
                        {payload.Receiver}, CAST({labels} AS jsonb), CAST({annotations} AS jsonb), {generatorUrl}, {now}, {now}, 1)
                ON CONFLICT (fingerprint, starts_at) DO UPDATE SET
                    status = EXCLUDED.status, ends_at = EXCLUDED.ends_at, alertname = EXCLUDED.alertname,
                    receiver = EXCLUDED.receiver, labels = EXCLUDED.labels, annotations = EXCLUDED.annotations,
                    generator_url = EXCLUDED.generator_url, last_received_at = EXCLUDED.last_received_at,
                    count = alerts.count + 1
                """, cancellationToken);
            alert.Labels.TryGetValue("severity", out var severity);
            events.Stage(db, new EventDraft(EventTypes.AlertReceived, null, null,
                new AlertReceived(alert.Fingerprint, alert.Alertname, alert.Status, severity, alert.StartsAt.ToUniversalTime(), payload.Receiver)));
        }

        // The events last, just before the commit: they hold the event-order lock until it.
        await db.SaveChangesAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }
}
