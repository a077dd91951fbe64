namespace Limen.Data;

/// <summary>One browser console connection, from the WebSocket's acceptance to its end.</summary>
public sealed class ConsoleSession
{
    public Guid Id { get; set; }
    /// <summary>No foreign keys on user and VM: the history outlives both, like the audit trail.</summary>
    public Guid UserId { get; set; }
    public Guid VmId { get; set; }
    public DateTimeOffset StartedAt { get; set; }
    public DateTimeOffset LastActivityAt { get; set; }
    public DateTimeOffset? EndedAt { get; set; }
    public string? EndReason { get; set; }
    public string? ClientIp { get; set; }
    public string? UserAgent { get; set; }
    /// <summary>
    /// The server relaying it (<see cref="Hosting.ServerIdentity"/>): a restarting server closes its
    /// own open sessions only, and a terminate asked elsewhere is sent to it. Null on rows from before replicas.
    /// </summary>
    public string? ServerId { get; set; }
}
