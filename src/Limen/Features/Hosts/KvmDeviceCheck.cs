using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;

namespace Limen.Features.Hosts;

/// <summary>Owner, group and permission bits of a device node.</summary>
public sealed record DeviceOwnership(uint Uid, uint Gid, UnixFileMode Mode, string Owner, string Group);

/// <summary>Who QEMU runs as under libvirt: the user and every group id its processes get.</summary>
public sealed record QemuIdentity(string User, uint Uid, IReadOnlySet<uint> Gids);

/// <summary>Why libvirt will re-probe QEMU, and the command that stops it.</summary>
public sealed record KvmDiagnosis(string Reason, string Fix);

/// <summary>
/// libvirt caches QEMU's capabilities, and throws the cache away whenever it finds that /dev/kvm
/// existed when it probed but QEMU's user cannot open it now (read and write, checked as that user
/// with its groups). Then every define and start re-probes QEMU: tens of seconds each instead of
/// milliseconds. This is the check libvirt makes, as a pure rule.
/// </summary>
public static partial class KvmAccessRule
{
    /// <summary>What Debian's udev rule does for /dev/kvm (./run.sh and ./test.sh do the same).</summary>
    public const string Fix = "chgrp kvm /dev/kvm && chmod 0660 /dev/kvm";

    /// <summary>libvirt's own default when qemu.conf does not say (Debian builds it so).</summary>
    public const string DefaultUser = "libvirt-qemu";

    /// <param name="kvmGid">The kvm group's id, when the group exists.</param>
    /// <returns>null when QEMU's user can read and write the device.</returns>
    public static KvmDiagnosis? Diagnose(DeviceOwnership device, QemuIdentity qemu, uint? kvmGid)
    {
        if (qemu.Uid == 0)
        {
            return null;
        }

        // Unix permission classes: the first that matches decides, the others are not consulted.
        var (relation, read, write) = device.Uid == qemu.Uid ? ("is its owner", UnixFileMode.UserRead, UnixFileMode.UserWrite)
            : qemu.Gids.Contains(device.Gid) ? ("is in its group", UnixFileMode.GroupRead, UnixFileMode.GroupWrite)
            : ("is neither its owner nor in its group", UnixFileMode.OtherRead, UnixFileMode.OtherWrite);
        if (device.Mode.HasFlag(read) && device.Mode.HasFlag(write))
        {
            return null;
        }

        var mode = Convert.ToString((int)device.Mode & 0x1FF, 8).PadLeft(4, '0');
        var reason = $"/dev/kvm is {device.Owner}:{device.Group} mode {mode} and QEMU's user {qemu.User} {relation}, so it cannot open it; " +
            "libvirt then re-probes QEMU on every define and start (tens of seconds each)";
        var join = kvmGid is { } gid && !qemu.Gids.Contains(gid) ? $"usermod -aG kvm {qemu.User} && " : "";
        return new KvmDiagnosis(reason, join + Fix);
    }

    /// <summary>The `user` and `group` settings of libvirt's qemu.conf (null when unset).</summary>
    public static (string User, string? Group) QemuUser(string? qemuConf)
    {
        string? Setting(string name) =>
            qemuConf is null ? null
            : Regex.Matches(qemuConf, $@"^[ \t]*{name}[ \t]*=[ \t]*""([^""]*)""", RegexOptions.Multiline) is { Count: > 0 } found ? found[^1].Groups[1].Value
            : null;
        return (Setting("user") ?? DefaultUser, Setting("group"));
    }

    /// <summary>Only a local system QEMU driver uses this machine's /dev/kvm and qemu.conf.</summary>
    public static bool AppliesTo(string uri) =>
        SystemUri().IsMatch(uri);

    [GeneratedRegex(@"^qemu(\+unix)?:///system(\?.*)?$")]
    private static partial Regex SystemUri();
}

/// <summary>Where the check looks; tests point it at files of their own.</summary>
public sealed record KvmCheckPaths(string Device = "/dev/kvm", string QemuConf = "/etc/libvirt/qemu.conf");

/// <summary>
/// At start of `limen serve`: warns once, with the fix, when libvirt will re-probe QEMU on every
/// define and start because QEMU's user cannot open /dev/kvm. Quiet when there is no /dev/kvm
/// (then libvirt's cache is stable) or the hypervisor is not this machine's system QEMU.
/// </summary>
public sealed partial class KvmDeviceCheck(IOptions<HypervisorOptions> options, KvmCheckPaths paths, ILogger<KvmDeviceCheck> logger)
    : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (!KvmAccessRule.AppliesTo(options.Value.Uri) || !File.Exists(paths.Device))
        {
            return;
        }

        var device = await StatAsync(paths.Device, cancellationToken);
        var conf = File.Exists(paths.QemuConf) ? await File.ReadAllTextAsync(paths.QemuConf, cancellationToken) : null;
        var (user, group) = KvmAccessRule.QemuUser(conf);
        var qemu = await IdentityAsync(user, group, cancellationToken);
        if (device is null || qemu is null)
        {
            // Without stat or the user's ids there is nothing to judge; libvirt will say more if it matters.
            return;
        }

        if (KvmAccessRule.Diagnose(device, qemu, await GroupIdAsync("kvm", cancellationToken)) is { } diagnosis)
        {
            LogReprobe(logger, diagnosis.Reason, diagnosis.Fix);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private static async Task<DeviceOwnership?> StatAsync(string path, CancellationToken cancellationToken)
    {
        // .NET reads a file's mode but not its owner; coreutils' stat says both.
        var fields = (await RunAsync("stat", cancellationToken, "-L", "-c", "%u %g %a %U %G", path))?.Split(' ', StringSplitOptions.TrimEntries);
        return fields is [var uid, var gid, var mode, var owner, var group]
            ? new DeviceOwnership(uint.Parse(uid, CultureInfo.InvariantCulture), uint.Parse(gid, CultureInfo.InvariantCulture),
                (UnixFileMode)Convert.ToInt32(mode, 8), owner, group)
            : null;
    }

    /// <summary>The user's uid and groups (primary, supplementary, and qemu.conf's group), as libvirt gives them to QEMU.</summary>
    private static async Task<QemuIdentity?> IdentityAsync(string user, string? group, CancellationToken cancellationToken)
    {
        // A leading + forces a numeric id in qemu.conf; id(1) takes a number as an id when no user has that name.
        var name = user.TrimStart('+');
        var uid = await RunAsync("id", cancellationToken, "-u", "--", name);
        var gids = await RunAsync("id", cancellationToken, "-G", "--", name);
        if (uid is null || gids is null)
        {
            return null;
        }

        var set = gids.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(g => uint.Parse(g, CultureInfo.InvariantCulture)).ToHashSet();
        if (group is not null && await GroupIdAsync(group.TrimStart('+'), cancellationToken) is { } configured)
        {
            set.Add(configured);
        }

        return new QemuIdentity(user, uint.Parse(uid.Trim(), CultureInfo.InvariantCulture), set);
    }

    private static async Task<uint?> GroupIdAsync(string group, CancellationToken cancellationToken)
    {
        if (uint.TryParse(group, CultureInfo.InvariantCulture, out var numeric))
        {
            return numeric;
        }

        // getent group NAME → "name:x:gid:members"
        var entry = (await RunAsync("getent", cancellationToken, "group", group))?.Split(':');
        return entry is [_, _, var gid, ..] && uint.TryParse(gid, CultureInfo.InvariantCulture, out var id) ? id : null;
    }

    /// <returns>stdout, or null when the program failed.</returns>
    private static async Task<string?> RunAsync(string program, CancellationToken cancellationToken, params string[] args)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start);
        if (process is null)
        {
            return null;
        }

        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        await process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken);
        return process.ExitCode == 0 ? (await stdout).Trim() : null;
    }

    [LoggerMessage(EventId = 1110, Level = LogLevel.Warning,
        Message = "libvirt will re-probe QEMU on every VM define and start: {Reason}. Fix: {Fix} (what Debian's udev rule does).")]
    private static partial void LogReprobe(ILogger logger, string reason, string fix);
}
