namespace Limen.Data;

public sealed class AuditLog
{
    public long Id { get; set; }
    public DateTimeOffset Time { get; set; }
    public string? RequestId { get; set; }
    /// <summary>No foreign key on purpose: the trail outlives the users it names.</summary>
    public Guid? UserId { get; set; }
    public string? Username { get; set; }
    public required string Action { get; set; }
    public string? TargetType { get; set; }
    public string? TargetId { get; set; }
    public required string Result { get; set; }
    public string? ErrorCode { get; set; }
    public string? ClientIp { get; set; }
    public string? UserAgent { get; set; }
    /// <summary>jsonb; never holds secrets.</summary>
    public string? Details { get; set; }
}
