using Prometheus;

namespace Limen.Features.Metrics;

/// <summary>
/// The host_* gauges, created on whichever registry exports them: LimenMetrics's for `limen serve`,
/// the agent's own for `limen agent`, so both expose the same names from the same code.
/// </summary>
public sealed class HostMetrics
{
    public HostMetrics(IMetricFactory factory)
    {
        // Absent until the first sample rather than a made-up 0 % that an alert rule would believe.
        var absentUntilSampled = new GaugeConfiguration { SuppressInitialValue = true };
        CpuUsagePercent = factory.CreateGauge("host_cpu_usage_percent",
            "Share of the host's CPU time that was busy between the last two samples, 0-100.", absentUntilSampled);
        MemoryUsagePercent = factory.CreateGauge("host_memory_usage_percent",
            "Host memory in use (MemTotal - MemAvailable) as a share of MemTotal, 0-100.", absentUntilSampled);
        DiskUsagePercent = factory.CreateGauge("host_disk_usage_percent",
            "Used share of the file system holding VM disks (Limen:Metrics:DiskPath), as df reports it, 0-100.", absentUntilSampled);
    }

    public Gauge CpuUsagePercent { get; }
    public Gauge MemoryUsagePercent { get; }
    public Gauge DiskUsagePercent { get; }

    public void Publish(HostSample sample)
    {
        CpuUsagePercent.Set(sample.CpuUsagePercent);
        MemoryUsagePercent.Set(sample.Memory.UsagePercent);
        DiskUsagePercent.Set(sample.Disk.UsagePercent);
    }
}
