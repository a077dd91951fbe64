namespace Limen.Features.Events;

/// <summary>Settings under "Limen:Events" (docs/api.md, "Events"; docs/operations.md).</summary>
public sealed class EventsOptions
{
    public const string Section = "Limen:Events";

    /// <summary>Events older than this are deleted; a client resuming from before them gets <c>reset</c>.</summary>
    public int RetentionHours { get; set; } = 24;

    /// <summary>An SSE comment this often keeps proxies from closing a quiet stream.</summary>
    public int HeartbeatSeconds { get; set; } = 15;

    /// <summary>Events one SSE client may have waiting; one more and the client is cut off with <c>overflow</c>.</summary>
    public int ClientBufferSize { get; set; } = 1000;

    public TimeSpan Retention => TimeSpan.FromHours(RetentionHours);
    public TimeSpan Heartbeat => TimeSpan.FromSeconds(HeartbeatSeconds);

    /// <summary>The first rule a setting breaks, or null: a bad value fails the start, not the first client.</summary>
    public string? Problem() =>
        RetentionHours is < 1 or > 24 * 366 ? "Limen:Events:RetentionHours must be between 1 and 8784."
        : HeartbeatSeconds is < 1 or > 300 ? "Limen:Events:HeartbeatSeconds must be between 1 and 300."
        : ClientBufferSize is < 1 or > 100_000 ? "Limen:Events:ClientBufferSize must be between 1 and 100000."
        : null;
}
