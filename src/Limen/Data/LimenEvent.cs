namespace Limen.Data;

/// <summary>
/// One entry of the event stream (`GET /api/events`). The id comes from a PostgreSQL sequence and
/// is handed out in commit order (the insert trigger serializes writers), so a reader that has seen
/// id N has seen every committed event below N. Kept for <c>Limen:Events:RetentionHours</c>.
/// </summary>
public sealed class LimenEvent
{
    public long Id { get; set; }
    public required string Type { get; set; }
    public DateTimeOffset At { get; set; }
    /// <summary>The user whose objects the event is about; null = admins only (hosts, alerts, system quota).</summary>
    public Guid? OwnerId { get; set; }
    public Guid? VmId { get; set; }
    /// <summary>The server that emitted it (<see cref="Hosting.ServerIdentity"/>).</summary>
    public required string ServerId { get; set; }
    /// <summary>jsonb: the event's own fields, snake_case.</summary>
    public required string Data { get; set; }
}
