namespace Limen.Data;

/// <summary>
/// One alert as Alertmanager delivered it to POST /api/alerts/webhook. Keyed by fingerprint (the
/// label set) and starts_at (one firing episode), so its resolved notification updates the same row
/// and a repeated or replayed delivery only bumps <see cref="Count"/>.
/// </summary>
public sealed class Alert
{
    public long Id { get; set; }
    public required string Fingerprint { get; set; }
    public DateTimeOffset StartsAt { get; set; }
    /// <summary>Set once resolved; null while firing (Alertmanager's endsAt is then only a timeout).</summary>
    public DateTimeOffset? EndsAt { get; set; }
    /// <summary>firing | resolved.</summary>
    public required string Status { get; set; }
    public required string Alertname { get; set; }
    /// <summary>The Alertmanager receiver that delivered it (critical | warning | info | default).</summary>
    public required string Receiver { get; set; }
    /// <summary>jsonb object of label name to value.</summary>
    public required string Labels { get; set; }
    /// <summary>jsonb object of annotation name to value.</summary>
    public required string Annotations { get; set; }
    public string? GeneratorUrl { get; set; }
    public DateTimeOffset FirstReceivedAt { get; set; }
    public DateTimeOffset LastReceivedAt { get; set; }
    /// <summary>Deliveries received for this row (first, repeats, resolved, replays).</summary>
    public int Count { get; set; }
}
