using Limen.Features.Metrics;
using Limen.Tests.Infrastructure;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Limen.Tests.Observability;

/// <summary>/api/metrics of a real server: every seed metric declared, host figures equal to /proc's.</summary>
public sealed class HostMetricsTests
{
    private static readonly string[] SeedMetrics =
    [
        "vm_quota_denied_total", "console_active_sessions", "host_cpu_usage_percent", "host_memory_usage_percent",
        "host_disk_usage_percent", "http_requests_total", "http_request_duration_seconds", "auth_failure_total",
        "limen_database_up", "limen_libvirt_up", "limen_build_info", "limen_backup_last_success_timestamp_seconds",
        "limen_restore_drill_last_success_timestamp_seconds",
    ];

    [Fact]
    public async Task Every_seed_metric_is_declared_and_host_figures_match_proc_at_the_same_moment()
    {
        await using var server = await LimenTestServer.StartAsync(new Dictionary<string, string?> { ["Limen:Metrics:HostSampleSeconds"] = "1" });
        var sampler = server.Services.GetRequiredService<HostSampler>();
        await Eventually.WaitAsync(() => Task.FromResult(sampler.Latest is not null), TimeSpan.FromSeconds(10), "the first host sample");

        string metrics = "";
        await Eventually.WaitAsync(async () =>
        {
            // A sample landing between the scrape and the /proc reading would compare two moments.
            var before = sampler.Latest;
            metrics = await server.MetricsAsync();
            var memory = ProcParsers.ParseMemInfo(await File.ReadAllTextAsync("/proc/meminfo"));
            var drive = new DriveInfo(server.StateDir);
            var disk = new DiskSpace(drive.TotalSize, drive.TotalFreeSpace, drive.AvailableFreeSpace);
            if (!ReferenceEquals(before, sampler.Latest))
            {
                return false;
            }

            Assert.InRange(ProblemAssert.Sample(metrics, "host_memory_usage_percent"), memory.UsagePercent - 3, memory.UsagePercent + 3);
            Assert.InRange(ProblemAssert.Sample(metrics, "host_disk_usage_percent"), disk.UsagePercent - 1, disk.UsagePercent + 1);
            Assert.InRange(ProblemAssert.Sample(metrics, "host_cpu_usage_percent"), 0, 100);
            return true;
        }, TimeSpan.FromSeconds(10), "a scrape between two samples");

        foreach (var name in SeedMetrics)
        {
            Assert.Contains($"# TYPE {name} ", metrics, StringComparison.Ordinal);
        }

        Assert.Equal(0, ProblemAssert.Sample(metrics, "console_active_sessions"));
        Assert.Matches("(?m)^console_active_sessions 0$", metrics);
        Assert.Matches("(?m)^limen_backup_last_success_timestamp_seconds 0$", metrics);
    }

    [Fact]
    public async Task The_sampler_runs_at_start_and_then_every_configured_interval()
    {
        await using var server = await LimenTestServer.StartAsync(new Dictionary<string, string?> { ["Limen:Metrics:HostSampleSeconds"] = "1" });
        var sampler = server.Services.GetRequiredService<HostSampler>();
        await Eventually.WaitAsync(() => Task.FromResult(sampler.Latest is not null), TimeSpan.FromSeconds(5), "the first sample at start");
        var first = sampler.Latest!;
        Assert.Equal(Path.GetFullPath(server.StateDir), first.DiskPath);
        await Eventually.WaitAsync(() => Task.FromResult(sampler.Latest!.Time >= first.Time.AddSeconds(2)), TimeSpan.FromSeconds(6),
            "two more samples one second apart");
    }

    [Fact]
    public void A_sample_interval_below_one_second_is_refused()
    {
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["Limen:Metrics:HostSampleSeconds"] = "0" }).Build();
        using var services = new ServiceCollection()
            .AddHostMetrics(configuration, "/", _ => throw new InvalidOperationException("not sampled here"))
            .BuildServiceProvider();
        var error = Assert.Throws<OptionsValidationException>(() => services.GetRequiredService<IOptions<MetricsOptions>>().Value);
        Assert.Contains("HostSampleSeconds", error.Message, StringComparison.Ordinal);
    }
}
