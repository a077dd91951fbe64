using Limen.Tests.Infrastructure;

namespace Limen.Libvirt.Tests;

/// <summary>What multi-host tests of a host going away rely on: its guests outlive its libvirtd.</summary>
[Collection(SimulatedHostsCollection.Name)]
public sealed class SimulatedHostGuestTests(SimulatedHostsFixture hosts)
{
    private static readonly TimeSpan BootTimeout = TimeSpan.FromSeconds(90);

    [Fact]
    public async Task A_guest_keeps_running_while_its_hosts_libvirtd_is_killed_and_is_found_again_after_the_restart()
    {
        var host = hosts.Host2;
        using var first = LibvirtConnection.Open(host.Uri);
        var guest = TinyGuest.Create(first, host.DiskDir);
        LibvirtConnection? second = null;
        var killed = false;
        try
        {
            using (var domain = guest.Lookup())
            {
                domain.Create();
            }
            guest.WaitForSerial(TinyGuest.Banner, BootTimeout);
            var qemu = int.Parse(File.ReadAllText(Path.Combine(host.Directory, "root", "run", "qemu", $"{guest.Name}.pid")).Trim(),
                System.Globalization.CultureInfo.InvariantCulture);

            await host.KillAsync();
            killed = true;
            Assert.Throws<LibvirtException>(() => LibvirtConnection.Open(host.Uri));
            Assert.Throws<LibvirtException>(() => guest.Lookup()); // the connection died with the daemon
            Assert.True(Directory.Exists($"/proc/{qemu}"), $"QEMU {qemu} died with libvirtd");

            await host.RestartAsync();
            killed = false;
            second = LibvirtConnection.Open(host.Uri);
            guest.Reattach(second);
            using var again = guest.Lookup();
            Assert.Equal(DomainState.Running, again.GetState().State);
            Assert.True(guest.Uptime(again) > 0);
            Assert.Single(guest.BannerLines()); // the same QEMU, never restarted
        }
        finally
        {
            if (killed)
            {
                await host.RestartAsync();
            }
            second ??= LibvirtConnection.Open(host.Uri);
            guest.Reattach(second);
            guest.Dispose();
            second.Dispose();
        }
    }
}
