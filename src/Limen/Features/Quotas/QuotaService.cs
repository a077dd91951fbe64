using Limen.Data;
using Limen.Features.Audit;
using Limen.Features.Events;
using Limen.Features.Hosts;
using Limen.Features.Metrics;
using Limen.Features.Outcomes;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Limen.Features.Quotas;

public static class QuotaResources
{
    public const string Vms = "vms";
    public const string Vcpus = "vcpus";
    public const string Memory = "memory";
    public const string Disk = "disk";
    public const string Snapshots = "snapshots";
}

/// <summary>What an operation would add: a new VM, a resize (deltas), a snapshot, or a start (running capacity).</summary>
public sealed record QuotaRequest(int Vms = 0, int Vcpus = 0, int MemoryMb = 0, int DiskGb = 0, int Snapshots = 0);

public sealed record QuotaFigures(int Vms, int Vcpus, int MemoryMb, int DiskGb, int Snapshots);

public sealed record QuotaLimitsView(int MaxVms, int MaxVcpus, int MaxMemoryMb, int MaxDiskGb, int MaxSnapshots);

public sealed record QuotaUsageView(int Vms, int Vcpus, int MemoryMb, int DiskGb, int Snapshots);

public sealed record QuotaScopeView(QuotaLimitsView Limits, QuotaUsageView Usage);

/// <summary>
/// Budget quotas: everything allocated to a user's VMs in any state counts (as Incus and
/// OpenStack count it), checked against the user's limits and the system's. Checks run inside the
/// caller's transaction after locking the system row and then the user's row, so concurrent
/// allocations are serialized and can never together pass a limit; the caller's insert or update
/// in the same transaction is the reservation.
/// </summary>
public sealed class QuotaService(
    LimenDbContext db,
    HostRegistry hosts,
    LimenMetrics metrics,
    AuditTrail audit,
    EventOutlet events,
    TimeProvider clock,
    IOptions<QuotaOptions> options)
{
    public const int MaxLimit = 1_000_000;

    /// <summary>Each limit's API name and its column on a quota row (null there = the derived default).</summary>
    private static readonly (string Name, Func<QuotaLimits, int?> Get, Action<QuotaLimits> Clear)[] Overrides =
    [
        ("max_vms", q => q.MaxVms, q => q.MaxVms = null),
        ("max_vcpus", q => q.MaxVcpus, q => q.MaxVcpus = null),
        ("max_memory_mb", q => q.MaxMemoryMb, q => q.MaxMemoryMb = null),
        ("max_disk_gb", q => q.MaxDiskGb, q => q.MaxDiskGb = null),
        ("max_snapshots", q => q.MaxSnapshots, q => q.MaxSnapshots = null),
    ];

    public static IReadOnlyList<string> LimitNames { get; } = Array.ConvertAll(Overrides, o => o.Name);

    /// <summary>Locks the quota rows and checks; null when allowed, else the denial (counted and audited).</summary>
    public async Task<QuotaDenied?> CheckAsync(Guid userId, QuotaRequest request, CancellationToken cancellationToken)
    {
        var system = await LockAsync(userId, cancellationToken);
        var systemLimits = await SystemLimitsAsync(system.Row, cancellationToken);
        var systemUsage = await UsageAsync(null, cancellationToken);
        var userLimits = UserLimits(system.User);
        var userUsage = await UsageAsync(userId, cancellationToken);
        var denial = Exceeded("user", request, userUsage, userLimits) ?? Exceeded("system", request, systemUsage, systemLimits);
        return denial is null ? null : await DenyAsync(userId, denial, cancellationToken);
    }

    /// <summary>Starting a VM takes running capacity: the running VMs' vCPUs and memory against the system's limits.</summary>
    public async Task<QuotaDenied?> CheckStartAsync(Guid userId, int vcpus, int memoryMb, CancellationToken cancellationToken)
    {
        var (row, _) = await LockAsync(userId, cancellationToken);
        var limits = await SystemLimitsAsync(row, cancellationToken);
        var running = db.Vms.Where(v => v.State == Vms.VmStates.Running || v.State == Vms.VmStates.Paused);
        var usage = new QuotaUsageView(0, await running.SumAsync(v => v.Vcpus, cancellationToken), await running.SumAsync(v => v.MemoryMb, cancellationToken), 0, 0);
        var denial = Exceeded("system_running", new QuotaRequest(Vcpus: vcpus, MemoryMb: memoryMb), usage, limits);
        return denial is null ? null : await DenyAsync(userId, denial, cancellationToken);
    }

    public async Task<QuotaScopeView> UserViewAsync(Guid userId, CancellationToken cancellationToken)
    {
        var row = await db.UserQuotas.AsNoTracking().FirstOrDefaultAsync(q => q.UserId == userId, cancellationToken);
        return new QuotaScopeView(UserLimits(row), await UsageAsync(userId, cancellationToken));
    }

    public async Task<QuotaScopeView> SystemViewAsync(CancellationToken cancellationToken)
    {
        var row = await db.SystemQuotas.AsNoTracking().FirstOrDefaultAsync(q => q.Id == SystemQuota.SingletonId, cancellationToken);
        return new QuotaScopeView(await SystemLimitsAsync(row, cancellationToken), await UsageAsync(null, cancellationToken));
    }

    /// <summary>Sets the user's overrides that <paramref name="request"/> names; the others keep their value.</summary>
    public async Task<Outcome<QuotaScopeView>> SetUserAsync(Guid userId, QuotaUpdateRequest request, CancellationToken cancellationToken)
    {
        if (LimitProblem(request) is { } invalid)
        {
            return invalid;
        }

        if (!await db.Users.AnyAsync(u => u.Id == userId, cancellationToken))
        {
            return new NotFound("The user");
        }

        var row = await db.UserQuotas.FirstOrDefaultAsync(q => q.UserId == userId, cancellationToken);
        // Sending the limits in force (or none) is a 200 that writes, tells and audits nothing.
        if (!Changes(row, request))
        {
            return await UserViewAsync(userId, cancellationToken);
        }

        if (row is null)
        {
            row = new UserQuota { UserId = userId };
            db.UserQuotas.Add(row);
        }

        Apply(row, request);
        StageChanged(userId, UserLimits(row));
        await db.SaveChangesAsync(cancellationToken);
        await audit.RecordAsync(new AuditEvent("quota.user.update", AuditResults.Success, "user", userId.ToString(), Details: request), cancellationToken);
        return await UserViewAsync(userId, cancellationToken);
    }

    /// <summary>The same for the system-wide limits.</summary>
    public async Task<Outcome<QuotaScopeView>> SetSystemAsync(QuotaUpdateRequest request, CancellationToken cancellationToken)
    {
        if (LimitProblem(request) is { } invalid)
        {
            return invalid;
        }

        var row = await db.SystemQuotas.FirstOrDefaultAsync(q => q.Id == SystemQuota.SingletonId, cancellationToken);
        if (!Changes(row, request))
        {
            return await SystemViewAsync(cancellationToken);
        }

        if (row is null)
        {
            row = new SystemQuota { Id = SystemQuota.SingletonId };
            db.SystemQuotas.Add(row);
        }

        Apply(row, request);
        StageChanged(null, await SystemLimitsAsync(row, cancellationToken));
        await db.SaveChangesAsync(cancellationToken);
        await audit.RecordAsync(new AuditEvent("quota.system.update", AuditResults.Success, "system", null, Details: request), cancellationToken);
        return await SystemViewAsync(cancellationToken);
    }

    /// <summary>
    /// Drops the user's override of <paramref name="limit"/> (every override when null; a name from
    /// <see cref="LimitNames"/>), so the configured default applies again.
    /// </summary>
    public async Task<Outcome<QuotaScopeView>> ResetUserAsync(Guid userId, string? limit, CancellationToken cancellationToken)
    {
        if (!await db.Users.AnyAsync(u => u.Id == userId, cancellationToken))
        {
            return new NotFound("The user");
        }

        var row = await db.UserQuotas.FirstOrDefaultAsync(q => q.UserId == userId, cancellationToken);
        var previous = Reset(row, limit);
        if (row is not null)
        {
            if (previous.Count > 0)
            {
                StageChanged(userId, UserLimits(row));
            }

            await db.SaveChangesAsync(cancellationToken);
        }

        await audit.RecordAsync(new AuditEvent("quota.user.reset", AuditResults.Success, "user", userId.ToString(),
            Details: new { limit, previous }), cancellationToken);
        return await UserViewAsync(userId, cancellationToken);
    }

    /// <summary>The same for the system-wide limits, which then derive from the host again.</summary>
    public async Task<Outcome<QuotaScopeView>> ResetSystemAsync(string? limit, CancellationToken cancellationToken)
    {
        var row = await db.SystemQuotas.FirstOrDefaultAsync(q => q.Id == SystemQuota.SingletonId, cancellationToken);
        var previous = Reset(row, limit);
        if (row is not null)
        {
            if (previous.Count > 0)
            {
                StageChanged(null, await SystemLimitsAsync(row, cancellationToken));
            }

            await db.SaveChangesAsync(cancellationToken);
        }

        await audit.RecordAsync(new AuditEvent("quota.system.reset", AuditResults.Success, "system", null,
            Details: new { limit, previous }), cancellationToken);
        return await SystemViewAsync(cancellationToken);
    }

    /// <summary>Clears the overrides (the row stays, all nulls: it is also what CheckAsync locks); returns those that were set.</summary>
    private Dictionary<string, int> Reset(QuotaLimits? row, string? limit)
    {
        var previous = new Dictionary<string, int>();
        if (row is null)
        {
            return previous;
        }

        foreach (var (name, get, clear) in Overrides.Where(o => limit is null || o.Name == limit))
        {
            if (get(row) is { } value)
            {
                previous[name] = value;
                clear(row);
            }
        }

        row.UpdatedAt = clock.GetUtcNow();
        return previous;
    }

    /// <summary>Whether <paramref name="request"/> sets any override to a value the row does not hold already.</summary>
    private static bool Changes(QuotaLimits? row, QuotaUpdateRequest request) =>
        (request.MaxVms is { } vms && vms != row?.MaxVms)
        || (request.MaxVcpus is { } vcpus && vcpus != row?.MaxVcpus)
        || (request.MaxMemoryMb is { } memory && memory != row?.MaxMemoryMb)
        || (request.MaxDiskGb is { } disk && disk != row?.MaxDiskGb)
        || (request.MaxSnapshots is { } snapshots && snapshots != row?.MaxSnapshots);

    private void Apply(QuotaLimits row, QuotaUpdateRequest request)
    {
        row.MaxVms = request.MaxVms ?? row.MaxVms;
        row.MaxVcpus = request.MaxVcpus ?? row.MaxVcpus;
        row.MaxMemoryMb = request.MaxMemoryMb ?? row.MaxMemoryMb;
        row.MaxDiskGb = request.MaxDiskGb ?? row.MaxDiskGb;
        row.MaxSnapshots = request.MaxSnapshots ?? row.MaxSnapshots;
        row.UpdatedAt = clock.GetUtcNow();
    }

    private static Invalid? LimitProblem(QuotaUpdateRequest request)
    {
        foreach (var (field, value) in new[]
        {
            ("max_vms", request.MaxVms), ("max_vcpus", request.MaxVcpus), ("max_memory_mb", request.MaxMemoryMb),
            ("max_disk_gb", request.MaxDiskGb), ("max_snapshots", request.MaxSnapshots),
        })
        {
            if (value is < 0 or > MaxLimit)
            {
                return new Invalid(field, $"{field} must be between 0 and {MaxLimit}.");
            }
        }

        return null;
    }

    /// <summary><c>quota.changed</c> with the limits now in force; a user's is theirs to see, the system's is for admins.</summary>
    private void StageChanged(Guid? userId, QuotaLimitsView limits) =>
        events.Stage(db, new EventDraft(EventTypes.QuotaChanged, userId, null,
            new { scope = userId is null ? "system" : "user", user_id = userId, limits }));

    private async Task<(SystemQuota Row, UserQuota User)> LockAsync(Guid userId, CancellationToken cancellationToken)
    {
        // Rows are created on first use; the lock order (system, then user) is the same everywhere.
        await db.Database.ExecuteSqlInterpolatedAsync(
            $"INSERT INTO system_quota (id, updated_at) VALUES ({SystemQuota.SingletonId}, now()) ON CONFLICT DO NOTHING", cancellationToken);
        await db.Database.ExecuteSqlInterpolatedAsync(
            $"INSERT INTO user_quotas (user_id, updated_at) VALUES ({userId}, now()) ON CONFLICT DO NOTHING", cancellationToken);
        var system = await db.SystemQuotas.FromSqlInterpolated($"SELECT * FROM system_quota WHERE id = {SystemQuota.SingletonId} FOR UPDATE")
            .AsNoTracking().SingleAsync(cancellationToken);
        var user = await db.UserQuotas.FromSqlInterpolated($"SELECT * FROM user_quotas WHERE user_id = {userId} FOR UPDATE")
            .AsNoTracking().SingleAsync(cancellationToken);
        return (system, user);
    }

    private QuotaLimitsView UserLimits(UserQuota? row)
    {
        var d = options.Value;
        return new QuotaLimitsView(row?.MaxVms ?? d.DefaultMaxVms, row?.MaxVcpus ?? d.DefaultMaxVcpus, row?.MaxMemoryMb ?? d.DefaultMaxMemoryMb,
            row?.MaxDiskGb ?? d.DefaultMaxDiskGb, row?.MaxSnapshots ?? d.DefaultMaxSnapshots);
    }

    private async Task<QuotaLimitsView> SystemLimitsAsync(SystemQuota? row, CancellationToken cancellationToken)
    {
        var o = options.Value;
        // Summed over every host: the system quota is the whole platform's.
        var node = await hosts.CapacityAsync(cancellationToken);
        return new QuotaLimitsView(
            row?.MaxVms ?? o.SystemMaxVms,
            row?.MaxVcpus ?? (int)(node.Cpus * o.CpuOvercommitRatio),
            row?.MaxMemoryMb ?? (int)(node.MemoryKiB / 1024 * o.MemoryOvercommitRatio),
            row?.MaxDiskGb ?? (int)(node.DiskBytes / (1024.0 * 1024 * 1024) * o.DiskOvercommitRatio),
            row?.MaxSnapshots ?? o.SystemMaxSnapshots);
    }

    /// <summary>Everything allocated to one user's VMs (or to all VMs), in any state.</summary>
    private async Task<QuotaUsageView> UsageAsync(Guid? userId, CancellationToken cancellationToken)
    {
        var vms = userId is { } id ? db.Vms.Where(v => v.OwnerId == id) : db.Vms;
        var snapshots = userId is { } owner
            ? db.VmSnapshots.Where(s => db.Vms.Any(v => v.Id == s.VmId && v.OwnerId == owner))
            : db.VmSnapshots;
        return new QuotaUsageView(
            await vms.CountAsync(cancellationToken),
            await vms.SumAsync(v => v.Vcpus, cancellationToken),
            await vms.SumAsync(v => v.MemoryMb, cancellationToken),
            await vms.SumAsync(v => v.DiskGb, cancellationToken),
            await snapshots.CountAsync(cancellationToken));
    }

    private static QuotaDenied? Exceeded(
        string scope, QuotaRequest request, QuotaUsageView usage, QuotaLimitsView limits)
    {
        foreach (var (resource, requested, used, limit) in new[]
        {
            (QuotaResources.Vms, request.Vms, usage.Vms, limits.MaxVms),
            (QuotaResources.Vcpus, request.Vcpus, usage.Vcpus, limits.MaxVcpus),
            (QuotaResources.Memory, request.MemoryMb, usage.MemoryMb, limits.MaxMemoryMb),
            (QuotaResources.Disk, request.DiskGb, usage.DiskGb, limits.MaxDiskGb),
            (QuotaResources.Snapshots, request.Snapshots, usage.Snapshots, limits.MaxSnapshots),
        })
        {
            // Only growth is checked: a limit lowered below usage blocks new allocations, nothing else.
            if (requested > 0 && used + requested > limit)
            {
                return new QuotaDenied(scope, resource, requested, used, limit);
            }
        }

        return null;
    }

    private async Task<QuotaDenied> DenyAsync(Guid userId, QuotaDenied denial, CancellationToken cancellationToken)
    {
        metrics.QuotaDenials.WithLabels(denial.Resource, userId.ToString()).Inc();
        await audit.RecordAsync(new AuditEvent("quota.denied", AuditResults.Denied, "user", userId.ToString(), "quota_exceeded",
            new { scope = denial.Scope, resource = denial.Resource, requested = denial.Requested, used = denial.Used, limit = denial.Limit }),
            cancellationToken);
        return denial;
    }
}
