using System.Globalization;

namespace Limen.Features.Metrics;

/// <summary>Cumulative CPU time of the whole host from /proc/stat, in USER_HZ ticks.</summary>
public readonly record struct CpuTimes(ulong Busy, ulong Idle)
{
    public ulong Total => Busy + Idle;
}

/// <summary>/proc/meminfo figures, in bytes.</summary>
public readonly record struct MemoryInfo(long TotalBytes, long FreeBytes, long AvailableBytes)
{
    /// <summary>What the kernel could not hand to a new program without swapping (as `free` reports "used").</summary>
    public long UsedBytes => TotalBytes - AvailableBytes;

    public double UsagePercent => TotalBytes <= 0 ? 0 : 100.0 * UsedBytes / TotalBytes;
}

/// <summary>statvfs figures of one file system, in bytes.</summary>
public readonly record struct DiskSpace(long TotalBytes, long FreeBytes, long AvailableBytes)
{
    /// <summary>
    /// df's Use%: used / (used + available to unprivileged users). Blocks reserved for root count
    /// as neither, so the figure reaches 100 % when ordinary writers (qemu, PostgreSQL) get ENOSPC.
    /// </summary>
    public double UsagePercent
    {
        get
        {
            var used = TotalBytes - FreeBytes;
            var usable = used + AvailableBytes;
            return usable <= 0 ? 0 : 100.0 * used / usable;
        }
    }
}

/// <summary>Pure parsers for the /proc files the host collector reads, so they can be tested with sample text.</summary>
public static class ProcParsers
{
    /// <summary>The aggregate "cpu" line and the number of "cpuN" lines (logical CPUs online).</summary>
    public static (CpuTimes Times, int Cores) ParseStat(string procStat)
    {
        CpuTimes? times = null;
        var cores = 0;
        foreach (var line in procStat.AsSpan().EnumerateLines())
        {
            if (line.StartsWith("cpu ", StringComparison.Ordinal))
            {
                times = ParseCpuLine(line.ToString());
            }
            else if (line.StartsWith("cpu", StringComparison.Ordinal) && line.Length > 3 && char.IsAsciiDigit(line[3]))
            {
                cores++;
            }
        }

        return times is { } t && cores > 0 ? (t, cores) : throw new FormatException("/proc/stat has no aggregate \"cpu\" line or no per-CPU lines.");
    }

    /// <summary>Busy share of the CPU time that passed between two readings, 0–100.</summary>
    public static double CpuUsagePercent(CpuTimes before, CpuTimes after)
    {
        // Counters only grow; a smaller reading means a different source (e.g. CPU hot-unplug): report idle.
        if (after.Total <= before.Total || after.Busy < before.Busy)
        {
            return 0;
        }

        return Math.Clamp(100.0 * (after.Busy - before.Busy) / (after.Total - before.Total), 0, 100);
    }

    public static MemoryInfo ParseMemInfo(string meminfo)
    {
        long? total = null, free = null, available = null;
        foreach (var line in meminfo.AsSpan().EnumerateLines())
        {
            if (line.StartsWith("MemTotal:", StringComparison.Ordinal))
            {
                total = KilobytesField(line);
            }
            else if (line.StartsWith("MemFree:", StringComparison.Ordinal))
            {
                free = KilobytesField(line);
            }
            else if (line.StartsWith("MemAvailable:", StringComparison.Ordinal))
            {
                available = KilobytesField(line);
            }
        }

        return total is { } t && free is { } f && available is { } a
            ? new MemoryInfo(t, f, a)
            : throw new FormatException("/proc/meminfo lacks MemTotal, MemFree or MemAvailable (kernel older than 3.14?).");
    }

    // cpu  user nice system idle iowait irq softirq steal guest guest_nice. guest and guest_nice are
    // already counted in user and nice, so adding them would count that time twice.
    private static CpuTimes ParseCpuLine(string line)
    {
        var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (fields.Length < 5)
        {
            throw new FormatException($"/proc/stat cpu line has too few fields: '{line}'.");
        }

        ulong Field(int i) => i < fields.Length ? ulong.Parse(fields[i], NumberStyles.None, CultureInfo.InvariantCulture) : 0;
        var idle = Field(4) + Field(5);
        var busy = Field(1) + Field(2) + Field(3) + Field(6) + Field(7) + Field(8);
        return new CpuTimes(busy, idle);
    }

    private static long KilobytesField(ReadOnlySpan<char> line)
    {
        var text = line[(line.IndexOf(':') + 1)..].Trim();
        if (!text.EndsWith(" kB", StringComparison.Ordinal))
        {
            throw new FormatException($"/proc/meminfo line without a kB unit: '{line}'.");
        }

        return long.Parse(text[..^3].Trim(), NumberStyles.None, CultureInfo.InvariantCulture) * 1024;
    }
}
