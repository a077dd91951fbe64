using System.ComponentModel.DataAnnotations;

namespace Limen.Features.Migration;

/// <summary>Settings under "Limen:Migration".</summary>
public sealed class MigrationOptions
{
    public const string Section = "Limen:Migration";

    /// <summary>How often a live migration's progress is read from libvirt and published (vm.migration.progress).</summary>
    [Range(100, 60_000)]
    public int ProgressIntervalMs { get; set; } = 500;

    /// <summary>How many VMs a drain moves at the same time.</summary>
    [Range(1, 8)]
    public int DrainParallelism { get; set; } = 2;

    /// <summary>A cap on each migration's bandwidth in MiB/s; none by default.</summary>
    [Range(1, 1_000_000)]
    public int? BandwidthMiBs { get; set; }
}
