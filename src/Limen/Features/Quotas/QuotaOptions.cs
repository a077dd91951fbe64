namespace Limen.Features.Quotas;

/// <summary>
/// "Limen:Quotas": the per-user defaults and how the system-wide limits derive from the host
/// (capacity × overcommit ratio) unless an admin sets them.
/// </summary>
public sealed class QuotaOptions
{
    public const string Section = "Limen:Quotas";

    public int DefaultMaxVms { get; set; } = 10;
    public int DefaultMaxVcpus { get; set; } = 16;
    public int DefaultMaxMemoryMb { get; set; } = 32768;
    public int DefaultMaxDiskGb { get; set; } = 500;
    public int DefaultMaxSnapshots { get; set; } = 50;

    public int SystemMaxVms { get; set; } = 500;
    public int SystemMaxSnapshots { get; set; } = 5000;
    public double CpuOvercommitRatio { get; set; } = 4.0;
    public double MemoryOvercommitRatio { get; set; } = 1.5;
    /// <summary>Overlays are thin, so disk budgets may exceed the file system holding them.</summary>
    public double DiskOvercommitRatio { get; set; } = 2.0;
}
