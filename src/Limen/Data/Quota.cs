namespace Limen.Data;

/// <summary>
/// Limits that override the configured defaults: one row per user (user_quotas) and one for the
/// whole system (system_quota, id 1). A null limit means "the default". The rows are also what
/// quota checks lock (SELECT … FOR UPDATE), so concurrent allocations queue behind each other.
/// </summary>
public abstract class QuotaLimits
{
    public int? MaxVms { get; set; }
    public int? MaxVcpus { get; set; }
    public int? MaxMemoryMb { get; set; }
    public int? MaxDiskGb { get; set; }
    public int? MaxSnapshots { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
}

public sealed class UserQuota : QuotaLimits
{
    public Guid UserId { get; set; }
}

public sealed class SystemQuota : QuotaLimits
{
    public const int SingletonId = 1;

    public int Id { get; set; }
}
