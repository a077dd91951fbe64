using Limen.Features.Hosts;
using Limen.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Limen.Tests.Vms;

/// <summary>`limen serve` warns once, with the fix, when QEMU's user cannot open /dev/kvm (libvirt then re-probes QEMU on every define).</summary>
public sealed class KvmDeviceCheckTests
{
    private const uint Qemu = 64055;
    private const uint Kvm = 108;
    private const uint QemuGroup = 64056;

    public static TheoryData<uint, uint, string, uint, uint[], bool, bool> Devices => new()
    {
        // owner, group, mode, QEMU's uid, QEMU's groups → re-probes?, fix needs usermod?
        { 0, 0, "600", Qemu, [Kvm, QemuGroup], true, false },        // as these machines boot without udev
        { 0, Kvm, "660", Qemu, [Kvm, QemuGroup], false, false },      // as Debian's udev rule leaves it
        { 0, Kvm, "600", Qemu, [Kvm, QemuGroup], true, false },
        { 0, Kvm, "640", Qemu, [Kvm, QemuGroup], true, false },       // read alone is not enough
        { 0, Kvm, "620", Qemu, [Kvm, QemuGroup], true, false },
        { 0, 0, "666", Qemu, [Kvm, QemuGroup], false, false },        // others may
        { Qemu, 0, "600", Qemu, [QemuGroup], false, false },         // QEMU's user owns it
        { Qemu, Kvm, "066", Qemu, [Kvm], true, false },              // the owner class decides, not group or others
        { 0, Kvm, "606", Qemu, [Kvm], true, false },                 // the group class decides, not others
        { 0, Kvm, "660", Qemu, [QemuGroup], true, true },            // QEMU's user is not in kvm
        { 0, 0, "600", 0, [0], false, false },                       // qemu.conf runs QEMU as root
    };

    [Theory]
    [MemberData(nameof(Devices))]
    public void QEMU_needs_read_and_write_access_by_its_user_or_groups(uint owner, uint group, string mode, uint uid, uint[] gids, bool reprobes, bool usermod)
    {
        var device = new DeviceOwnership(owner, group, (UnixFileMode)Convert.ToInt32(mode, 8), owner == 0 ? "root" : "libvirt-qemu", group == Kvm ? "kvm" : "root");
        var diagnosis = KvmAccessRule.Diagnose(device, new QemuIdentity("libvirt-qemu", uid, gids.ToHashSet()), Kvm);

        Assert.Equal(reprobes, diagnosis is not null);
        if (diagnosis is not null)
        {
            Assert.Contains($"mode 0{mode}", diagnosis.Reason, StringComparison.Ordinal);
            Assert.EndsWith(KvmAccessRule.Fix, diagnosis.Fix, StringComparison.Ordinal);
            Assert.Equal(usermod, diagnosis.Fix.StartsWith("usermod -aG kvm libvirt-qemu && ", StringComparison.Ordinal));
        }
    }

    [Theory]
    [InlineData(null, "libvirt-qemu", null)]
    [InlineData("#user = \"root\"\n#group = \"root\"\n", "libvirt-qemu", null)]
    [InlineData("user = \"qemu\"\ngroup = \"kvm\"\n", "qemu", "kvm")]
    [InlineData("  user=\"+0\"\n", "+0", null)]
    [InlineData("user = \"a\"\nuser = \"b\"\n", "b", null)]
    [InlineData("dynamic_ownership = 1\nremember_owner = 0\n", "libvirt-qemu", null)]
    public void The_user_and_group_come_from_qemu_conf_with_libvirts_default(string? conf, string user, string? group) =>
        Assert.Equal((user, group), KvmAccessRule.QemuUser(conf));

    [Theory]
    [InlineData("qemu:///system", true)]
    [InlineData("qemu+unix:///system", true)]
    [InlineData("qemu:///system?socket=/run/libvirt/libvirt-sock", true)]
    [InlineData("qemu:///session", false)]
    [InlineData("qemu+ssh://host-b/system", false)]
    [InlineData("qemu+tcp://127.0.0.1/system", false)]
    [InlineData("test:///default", false)]
    public void Only_the_local_system_qemu_driver_uses_this_machines_dev_kvm(string uri, bool applies) =>
        Assert.Equal(applies, KvmAccessRule.AppliesTo(uri));

    [Fact]
    public async Task Serve_warns_once_naming_the_fix_while_qemus_user_cannot_open_the_device_and_is_quiet_once_it_can()
    {
        var dir = Directory.CreateTempSubdirectory("limen-test-kvm-").FullName;
        var device = Path.Combine(dir, "kvm");
        var conf = Path.Combine(dir, "qemu.conf");
        try
        {
            // Owned by the test's user (root, like /dev/kvm on these machines), 0600.
            await File.WriteAllTextAsync(device, "");
            File.SetUnixFileMode(device, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            await File.WriteAllTextAsync(conf, "# as shipped, plus:\nuser = \"libvirt-qemu\"\n");

            var broken = await WarningsAsync("qemu:///system", device, conf);
            var warning = Assert.Single(broken);
            Assert.StartsWith("Warning: ", warning, StringComparison.Ordinal);
            Assert.Contains("libvirt will re-probe QEMU on every VM define and start", warning, StringComparison.Ordinal);
            Assert.Contains("mode 0600 and QEMU's user libvirt-qemu is neither its owner nor in its group", warning, StringComparison.Ordinal);
            Assert.Contains("Fix: chgrp kvm /dev/kvm && chmod 0660 /dev/kvm", warning, StringComparison.Ordinal);

            // Another hypervisor than this machine's system QEMU: /dev/kvm here does not matter.
            Assert.Empty(await WarningsAsync("test:///default", device, conf));

            // The fix, applied to the test's device: no warning.
            await ExternalProcess.RunAsync("chgrp", "kvm", device);
            File.SetUnixFileMode(device, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite);
            Assert.Empty(await WarningsAsync("qemu:///system", device, conf));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>Starts a server with the check pointed at the test's files and returns its event-1110 warnings.</summary>
    private static async Task<List<string>> WarningsAsync(string uri, string device, string conf)
    {
        var logs = new CollectingLoggerProvider();
        await using (await LimenTestServer.StartAsync(new Dictionary<string, string?> { ["Limen:Hypervisor:Uri"] = uri }, services =>
        {
            services.AddSingleton(new KvmCheckPaths(device, conf));
            services.AddSingleton<ILoggerProvider>(logs);
        }))
        {
            // The check runs before the server listens: its verdict is in by now.
        }

        return logs.Entries.Where(e => e.EventId == 1110).Select(e => $"{e.Level}: {e.Message}").ToList();
    }
}
