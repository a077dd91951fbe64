using System.Text.Json.Serialization;
using Limen.Data;

namespace Limen.Features.Migration;

public static class MigrationResults
{
    public const string Running = "running";
    public const string Completed = "completed";
    public const string Failed = "failed";
}

public static class MigrationModes
{
    /// <summary>The VM keeps running: libvirt live migration.</summary>
    public const string Live = "live";
    /// <summary>A stopped VM: its definition (and disk) move.</summary>
    public const string Offline = "offline";
}

public static class MigrationStorage
{
    /// <summary>Both hosts reach the same disk folder: only memory and the definition move.</summary>
    public const string Shared = "shared";
    /// <summary>The disk is copied into the target's disk folder.</summary>
    public const string Copy = "copy";
}

/// <summary>The body of POST /api/vms/{id}/actions/migrate; without a target, placement picks one.</summary>
public sealed record MigrateVmRequest([property: JsonPropertyName("target_host_id")] Guid? TargetHostId);

/// <summary>The data of vm.migration.progress.</summary>
public sealed record MigrationProgress(Guid VmId, Guid MigrationId, Guid SourceHostId, Guid TargetHostId, long? DataTotal, long? DataProcessed, long? DataRemaining);

/// <summary>One migration of a VM, as GET /api/vms/{id}/migrations shows it (admins).</summary>
public sealed record MigrationResponse(
    Guid Id,
    Guid VmId,
    Guid SourceHostId,
    Guid TargetHostId,
    string Mode,
    string Storage,
    string Result,
    string? Error,
    DateTimeOffset StartedAt,
    DateTimeOffset? FinishedAt,
    long? DataTotal,
    long? DataRemaining,
    long? DowntimeMs)
{
    public static MigrationResponse From(VmMigration m) => new(m.Id, m.VmId, m.SourceHostId, m.TargetHostId, m.Mode, m.Storage, m.Result,
        m.Error, m.StartedAt, m.FinishedAt, m.DataTotal, m.DataRemaining, m.DowntimeMs);
}

/// <summary>What a drain did: the host is in maintenance; each VM moved or says why it did not.</summary>
public sealed record DrainReport(Guid HostId, string Mode, IReadOnlyList<DrainedVm> Moved, IReadOnlyList<StayedVm> Stayed);

public sealed record DrainedVm(Guid VmId, string Name, Guid TargetHostId);

public sealed record StayedVm(Guid VmId, string Name, string State, string Reason);
