using System.Diagnostics;
using Microsoft.Extensions.Options;

namespace Limen.Hosting;

/// <summary>
/// A test facility: `Limen:Faults:CrashAt` names one point of a multi-step operation, and the
/// process SIGKILLs itself when it gets there, so the fault tests can stop `limen serve` exactly
/// between two steps instead of racing a timer. Unset (always, outside those tests) every point is
/// a single comparison with null and nothing else.
/// </summary>
public sealed class CrashPoints(IOptions<FaultOptions> options)
{
    public const string VmCreateRowInserted = "vm.create.row_inserted";
    public const string VmCreateDiskCreated = "vm.create.disk_created";
    public const string VmCreateDomainDefined = "vm.create.domain_defined";
    public const string VmDeleteMarked = "vm.delete.marked";
    public const string VmDeleteDomainRemoved = "vm.delete.domain_removed";
    public const string VmDeleteFilesRemoved = "vm.delete.files_removed";
    public const string SnapshotCreateRowInserted = "snapshot.create.row_inserted";
    public const string SnapshotCreateTaken = "snapshot.create.taken";
    public const string SnapshotRevertMarked = "snapshot.revert.marked";
    public const string SnapshotRevertDiskReverted = "snapshot.revert.disk_reverted";
    public const string SnapshotRevertDone = "snapshot.revert.done";
    public const string SnapshotDeleteMarked = "snapshot.delete.marked";
    public const string SnapshotDeleteRemoved = "snapshot.delete.removed";

    public static readonly IReadOnlyList<string> All =
    [
        VmCreateRowInserted, VmCreateDiskCreated, VmCreateDomainDefined,
        VmDeleteMarked, VmDeleteDomainRemoved, VmDeleteFilesRemoved,
        SnapshotCreateRowInserted, SnapshotCreateTaken,
        SnapshotRevertMarked, SnapshotRevertDiskReverted, SnapshotRevertDone,
        SnapshotDeleteMarked, SnapshotDeleteRemoved,
    ];

    private readonly string? armed = options.Value.CrashAt;

    public void Reach(string point)
    {
        if (armed is null || !string.Equals(armed, point, StringComparison.Ordinal))
        {
            return;
        }

        // Straight to stderr: the console logger writes from a queue that SIGKILL would not drain.
        Console.Error.WriteLine($"limen: crash point {point} reached, killing the process (Limen:Faults:CrashAt)");
        Console.Error.Flush();
        // On Unix, Kill() is SIGKILL: no finally blocks, no disposal, no graceful shutdown — a real crash.
        Process.GetCurrentProcess().Kill();
    }
}

/// <summary>Settings under "Limen:Faults". Only the fault tests set them.</summary>
public sealed class FaultOptions
{
    public const string Section = "Limen:Faults";

    /// <summary>One of <see cref="CrashPoints.All"/>, or null (the default: no crash point).</summary>
    public string? CrashAt { get; set; }
}

public static class CrashPointsRegistration
{
    public static IServiceCollection AddCrashPoints(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<FaultOptions>()
            .Bind(configuration.GetSection(FaultOptions.Section))
            // A misspelt point would never fire and a fault test would prove nothing: refuse to start.
            .Validate(o => o.CrashAt is null || CrashPoints.All.Contains(o.CrashAt),
                $"Limen:Faults:CrashAt must be one of: {string.Join(", ", CrashPoints.All)}.")
            .ValidateOnStart();
        services.AddSingleton<CrashPoints>();
        return services;
    }
}
