namespace Limen.Data;

/// <summary>
/// A one-time console ticket: only its SHA-256 is stored, so a database dump holds no usable
/// ticket; any server replica can check one.
/// </summary>
public sealed class ConsoleTicket
{
    public Guid Id { get; set; }
    /// <summary>SHA-256 of the ticket's 32 random bytes.</summary>
    public required byte[] TokenHash { get; set; }
    public Guid UserId { get; set; }
    public Guid VmId { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset ExpiresAt { get; set; }
    /// <summary>Set by the one conditional UPDATE that consumes the ticket; never cleared.</summary>
    public DateTimeOffset? UsedAt { get; set; }
}
