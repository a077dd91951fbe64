using System.Text.RegularExpressions;

namespace Limen.Features.Vms;

/// <summary>What a VM's name and sizes may be. Names are hostname-like, so never need escaping anywhere.</summary>
public static partial class VmRules
{
    public const int MinMemoryMb = 64;
    public const int MaxDiskGb = 2048;

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}\z")]
    private static partial Regex NamePattern();

    public static string? NameProblem(string name) => NamePattern().IsMatch(name)
        ? null
        : "name must be 1 to 63 characters of letters, digits, '.', '_' or '-', starting with a letter or digit.";

    public static string? AntiAffinityGroupProblem(string? group) => group is null || NamePattern().IsMatch(group)
        ? null
        : "anti_affinity_group must be 1 to 63 characters of letters, digits, '.', '_' or '-', starting with a letter or digit.";

    public static string? VcpusProblem(int vcpus, int hostCpus) =>
        vcpus < 1 || vcpus > hostCpus ? $"vcpus must be between 1 and the host's {hostCpus} CPUs." : null;

    public static string? MemoryProblem(int memoryMb, long hostMemoryMb) =>
        memoryMb < MinMemoryMb || memoryMb > hostMemoryMb ? $"memory_mb must be between {MinMemoryMb} and the host's {hostMemoryMb} MiB." : null;

    public static string? DiskProblem(int diskGb, long baseImageBytes)
    {
        var minimum = Math.Max(1, (int)Math.Ceiling(baseImageBytes / (1024.0 * 1024 * 1024)));
        return diskGb < minimum || diskGb > MaxDiskGb ? $"disk_gb must be between {minimum} (the image's size) and {MaxDiskGb}." : null;
    }

    /// <summary>Boot devices: a non-empty ordered subset of hd and cdrom.</summary>
    public static string? BootOrderProblem(IReadOnlyList<string> devices) =>
        devices.Count is 0 or > 2 || devices.Any(d => d is not ("hd" or "cdrom")) || devices.Distinct().Count() != devices.Count
            ? "devices must list 'hd' and/or 'cdrom', each at most once."
            : null;

    /// <summary>A locally administered unicast MAC in QEMU's 52:54:00 range.</summary>
    public static string NewMacAddress()
    {
        Span<byte> tail = stackalloc byte[3];
        System.Security.Cryptography.RandomNumberGenerator.Fill(tail);
        return $"52:54:00:{tail[0]:x2}:{tail[1]:x2}:{tail[2]:x2}";
    }
}
