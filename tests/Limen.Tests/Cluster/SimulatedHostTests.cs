using System.Xml.Linq;
using Limen.Libvirt;
using Limen.Tests.Infrastructure;

namespace Limen.Tests.Cluster;

/// <summary>The simulated hosts other multi-host tests stand on: each one a libvirtd of its own, reachable, killable, restartable.</summary>
[Collection(SimulatedHostsCollection.Name)]
public sealed class SimulatedHostTests(SimulatedHostsFixture hosts)
{
    [Fact]
    public void Each_host_answers_on_its_own_uri_as_itself_with_its_own_host_uuid()
    {
        using var two = LibvirtConnection.Open(hosts.Host2.Uri);
        using var three = LibvirtConnection.Open(hosts.Host3.Uri);
        using var system = LibvirtConnection.OpenReadOnly("qemu:///system");

        Assert.Equal("qemu+tcp://127.0.0.2/system", hosts.Host2.Uri);
        Assert.Equal("simhost2", two.GetHostname());
        Assert.Equal("simhost3", three.GetHostname());
        Assert.DoesNotContain("simhost", system.GetHostname(), StringComparison.Ordinal);
        // Migration refuses a target with the source's host UUID ("Attempt to migrate guest to the same host").
        Assert.Equal(3, new[] { HostUuid(two), HostUuid(three), HostUuid(system) }.Distinct().Count());
    }

    [Fact]
    public void The_disk_folders_are_reachable_by_qemu_running_as_libvirt_qemu()
    {
        foreach (var host in new[] { hosts.Host2, hosts.Host3 })
        {
            Assert.True(File.GetUnixFileMode(host.Directory).HasFlag(UnixFileMode.OtherExecute), host.Directory);
            Assert.True(File.GetUnixFileMode(host.DiskDir).HasFlag(UnixFileMode.OtherExecute | UnixFileMode.OtherRead), host.DiskDir);
        }
    }

    [Fact]
    public async Task A_killed_host_is_unreachable_and_answers_again_after_a_restart()
    {
        var host = hosts.Host3;
        using var before = LibvirtConnection.Open(host.Uri);
        var killed = false;
        try
        {
            await host.KillAsync();
            killed = true;

            var refused = Assert.Throws<LibvirtException>(() => LibvirtConnection.Open(host.Uri));
            // Refused names the address; a kill that raced one of libvirtd's forks leaves the listening
            // socket with the child for a moment, and the queued connection is reset instead.
            Assert.Matches(@"127\.0\.0\.3|Connection reset by peer", refused.Message);
            Assert.Throws<LibvirtException>(() => before.GetHostname());

            await host.RestartAsync();
            killed = false;
            using var after = LibvirtConnection.Open(host.Uri);
            Assert.Equal("simhost3", after.GetHostname());
        }
        finally
        {
            if (killed)
            {
                await host.RestartAsync();
            }
        }
    }

    private static string HostUuid(LibvirtConnection connection)
        => XDocument.Parse(connection.GetCapabilities()).Root!.Element("host")!.Element("uuid")!.Value;
}
