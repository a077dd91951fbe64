using Limen.Features.Metrics;

namespace Limen.Tests.Observability;

public sealed class HostMetricsParsingTests
{
    private const string Stat = """
        cpu  4705 356 584 3699 23 0 36 12 100 7
        cpu0 1393 280 260 1770 12 0 18 6 50 3
        cpu1 3312 76 324 1929 11 0 18 6 50 4
        intr 114930548 113199788 3 0 5 263 0 4
        ctxt 1990473
        btime 1062191376
        processes 2915
        """;

    private const string MemInfo = """
        MemTotal:        8052428 kB
        MemFree:          512000 kB
        MemAvailable:    6039321 kB
        Buffers:          102400 kB
        Cached:          4096000 kB
        HugePages_Total:       0
        """;

    [Fact]
    public void Stat_gives_busy_and_idle_ticks_without_counting_guest_time_twice_and_the_cpu_count()
    {
        var (times, cores) = ProcParsers.ParseStat(Stat);
        Assert.Equal(4705UL + 356 + 584 + 0 + 36 + 12, times.Busy);   // user nice system irq softirq steal; guest is inside user
        Assert.Equal(3699UL + 23, times.Idle);                         // idle + iowait
        Assert.Equal(2, cores);
    }

    [Fact]
    public void Cpu_usage_is_the_busy_share_of_the_ticks_between_two_readings()
    {
        Assert.Equal(25, ProcParsers.CpuUsagePercent(new CpuTimes(1000, 3000), new CpuTimes(1100, 3300)), 6);
        Assert.Equal(100, ProcParsers.CpuUsagePercent(new CpuTimes(1000, 3000), new CpuTimes(1200, 3000)), 6);
        // No time passed, or counters went backwards: idle rather than a division by zero or a negative figure.
        Assert.Equal(0, ProcParsers.CpuUsagePercent(new CpuTimes(1000, 3000), new CpuTimes(1000, 3000)));
        Assert.Equal(0, ProcParsers.CpuUsagePercent(new CpuTimes(1000, 3000), new CpuTimes(900, 3100)));
    }

    [Fact]
    public void Meminfo_is_read_in_bytes_and_usage_counts_what_is_not_available()
    {
        var memory = ProcParsers.ParseMemInfo(MemInfo);
        Assert.Equal(8052428L * 1024, memory.TotalBytes);
        Assert.Equal(512000L * 1024, memory.FreeBytes);
        Assert.Equal(6039321L * 1024, memory.AvailableBytes);
        Assert.Equal((8052428L - 6039321) * 1024, memory.UsedBytes);
        Assert.Equal(100.0 * (8052428 - 6039321) / 8052428, memory.UsagePercent, 6);
    }

    [Fact]
    public void Disk_usage_is_what_df_prints_so_reserved_blocks_count_as_neither_used_nor_available()
    {
        // 100 blocks, 40 free of which 10 reserved for root: df shows 60 used, 30 available, 67 %.
        Assert.Equal(100.0 * 60 / 90, new DiskSpace(100, 40, 30).UsagePercent, 6);
        Assert.Equal(0, new DiskSpace(0, 0, 0).UsagePercent);
    }

    [Theory]
    [InlineData("intr 1 2 3\n")]
    [InlineData("cpu  1 2 3\ncpu0 1 2 3 4\n")]
    [InlineData("cpu  1 2 x 4 5\ncpu0 1 2 3 4\n")]
    [InlineData("cpu  1 2 3 4 5\n")]
    public void Unreadable_stat_is_a_format_error(string text) => Assert.Throws<FormatException>(() => ProcParsers.ParseStat(text));

    [Theory]
    [InlineData("MemTotal: 100 kB\nMemFree: 10 kB\n")]
    [InlineData("MemTotal: 100 MB\nMemFree: 10 kB\nMemAvailable: 20 kB\n")]
    public void Unreadable_meminfo_is_a_format_error(string text) => Assert.Throws<FormatException>(() => ProcParsers.ParseMemInfo(text));
}
