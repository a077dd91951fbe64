namespace Limen.Features.Metrics;

/// <summary>Settings under "Limen:Metrics" (env: Limen__Metrics__Name).</summary>
public sealed class MetricsOptions
{
    public const string Section = "Limen:Metrics";

    /// <summary>Seconds between host samples.</summary>
    public int HostSampleSeconds { get; set; } = 30;

    /// <summary>A path on the file system whose usage host_disk_usage_percent reports (the one holding VM disks).
    /// Default: the state directory for `limen serve`, / for `limen agent`.</summary>
    public string? DiskPath { get; set; }

    /// <summary>`limen serve` only: the bearer token /api/metrics then requires of every scraper (Prometheus's credentials_file).</summary>
    public string? ScrapeToken { get; set; }

    /// <summary>A file holding the scrape token instead; read on every scrape, so rotating it needs no restart.</summary>
    public string? ScrapeTokenFile { get; set; }

    /// <summary>
    /// Without a scrape token, who may scrape besides loopback: CIDR networks ("10.0.0.0/8", "fd00::/8").
    /// Ignored once a token is configured (then the token alone decides).
    /// </summary>
    public string[] TrustedNetworks { get; set; } = [];

    /// <summary>A token is configured (even one whose file is missing or empty: then nobody may scrape, never everybody).</summary>
    public bool ScrapeTokenConfigured => !string.IsNullOrEmpty(ScrapeToken) || !string.IsNullOrEmpty(ScrapeTokenFile);
}

public sealed record HostSample(DateTimeOffset Time, double CpuUsagePercent, int CpuCores, MemoryInfo Memory, DiskSpace Disk, string DiskPath);

/// <summary>
/// Reads /proc/stat, /proc/meminfo and statvfs of the disk path, publishes the figures to the host
/// gauges and keeps the latest sample. Only the background sampler calls it, so a scrape reads
/// gauges and never waits on the file system.
/// </summary>
public sealed class HostSampler(HostMetrics gauges, string diskPath, TimeProvider clock)
{
    /// <summary>CPU usage is a rate: the first sample measures over this window instead of "since boot".</summary>
    public static readonly TimeSpan FirstCpuWindow = TimeSpan.FromSeconds(1);

    private CpuTimes? previousCpu;
    private HostSample? latest;

    public string DiskPath { get; } = Path.GetFullPath(diskPath);

    /// <summary>The most recent sample; null until the first one completes.</summary>
    public HostSample? Latest => Volatile.Read(ref latest);

    public async Task<HostSample> SampleAsync(CancellationToken cancellationToken)
    {
        if (previousCpu is null)
        {
            previousCpu = ReadCpu().Times;
            await Task.Delay(FirstCpuWindow, clock, cancellationToken);
        }

        var (cpu, cores) = ReadCpu();
        var cpuPercent = ProcParsers.CpuUsagePercent(previousCpu.Value, cpu);
        previousCpu = cpu;
        var memory = ProcParsers.ParseMemInfo(await File.ReadAllTextAsync("/proc/meminfo", cancellationToken));
        // DriveInfo on Linux is statvfs(2) of the given path, so any path inside the mount works.
        var drive = new DriveInfo(DiskPath);
        var disk = new DiskSpace(drive.TotalSize, drive.TotalFreeSpace, drive.AvailableFreeSpace);

        var sample = new HostSample(clock.GetUtcNow(), cpuPercent, cores, memory, disk, DiskPath);
        gauges.Publish(sample);
        Volatile.Write(ref latest, sample);
        return sample;
    }

    private static (CpuTimes Times, int Cores) ReadCpu() => ProcParsers.ParseStat(File.ReadAllText("/proc/stat"));
}
