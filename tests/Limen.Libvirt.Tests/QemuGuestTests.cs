using System.Diagnostics;
using Xunit.Abstractions;

namespace Limen.Libvirt.Tests;

/// <summary>
/// The binding against the real daemon and a real guest. Requires libvirtd and guest/build.sh's
/// packages; when they are missing these tests fail — they never skip.
/// </summary>
public sealed class QemuGuestTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan BootTimeout = TimeSpan.FromSeconds(90);

    private readonly LibvirtConnection connection = LibvirtConnection.Open(TinyGuest.Uri);

    public void Dispose() => connection.Dispose();

    [Fact]
    public async Task Tiny_guest_boots_reports_stats_reboots_and_shuts_down()
    {
        using var subscription = connection.SubscribeDomainLifecycle();
        using var guest = TinyGuest.Create(connection);
        using var domain = guest.Lookup();
        Assert.Equal(DomainState.Shutoff, domain.GetState().State);

        var clock = Stopwatch.StartNew();
        domain.Create();
        var createReturned = clock.Elapsed;
        var banner = guest.WaitForSerial($"{TinyGuest.Banner}", BootTimeout);
        output.WriteLine($"virDomainCreate returned after {createReturned.TotalMilliseconds:F0} ms, banner after {banner.TotalMilliseconds:F0} ms");
        Assert.Contains("disks=vda boots=1", guest.SerialLog());

        Assert.Equal(DomainState.Running, domain.GetState().State);
        Assert.True(domain.IsActive);
        var info = domain.GetInfo();
        Assert.Equal(256UL * 1024, info.MaxMemoryKiB);
        Assert.Equal(1, info.VirtualCpus);

        var first = domain.GetStats();
        Thread.Sleep(1000);
        var second = domain.GetStats();
        Assert.Equal(DomainState.Running, second.State);
        Assert.True(second.CpuTimeNs > first.CpuTimeNs, $"cpu time {first.CpuTimeNs} -> {second.CpuTimeNs}");
        Assert.Equal(256UL * 1024, second.Memory.ActualKiB);
        Assert.True(second.Memory.RssKiB > 10 * 1024, $"rss {second.Memory.RssKiB} KiB");
        var disk = Assert.Single(second.Blocks);
        Assert.Equal("vda", disk.Name);
        Assert.Equal(guest.DiskPath, disk.Path);
        Assert.True(disk.ReadBytes > 1024 * 1024, $"read {disk.ReadBytes} bytes"); // the BIOS read the kernel off it
        Assert.True(disk.WriteBytes > 0, "the guest writes its boot counter");
        Assert.Equal(1UL << 30, disk.CapacityBytes);
        Assert.Empty(second.Interfaces);
        Assert.Contains(connection.GetAllDomainStats(DomainStatsTypes.CpuTotal, ListDomainsFlags.Running), s => s.Uuid == guest.Uuid && s.CpuTimeNs > 0);

        // Reboot: libvirt sends the ACPI power button and resets the guest when it powers off; the
        // boot counter on the disk shows the same disk came back.
        clock.Restart();
        domain.Reboot();
        guest.WaitForSerial("boots=2", BootTimeout);
        output.WriteLine($"reboot to banner: {clock.Elapsed.TotalMilliseconds:F0} ms");
        Assert.Equal(DomainState.Running, domain.GetState().State);

        clock.Restart();
        domain.Shutdown();
        TinyGuest.WaitFor(() => domain.GetState().State == DomainState.Shutoff, TimeSpan.FromSeconds(30), "ACPI shutdown");
        output.WriteLine($"ACPI shutdown: {clock.Elapsed.TotalMilliseconds:F0} ms");
        Assert.Equal(1, domain.GetState().Reason); // VIR_DOMAIN_SHUTOFF_SHUTDOWN
        Assert.Contains("LIMEN-GUEST POWEROFF", guest.SerialLog());

        var events = new List<DomainLifecycleEvent>();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (!events.Any(e => e.Event == DomainEventType.Stopped))
        {
            var e = await subscription.Events.ReadAsync(timeout.Token);
            if (e.Uuid == guest.Uuid)
            {
                events.Add(e);
            }
        }
        output.WriteLine(string.Join(", ", events.Select(e => $"{e.Event}/{e.Detail}")));
        Assert.Equal(DomainEventType.Defined, events[0].Event);
        Assert.Contains(events, e => e.Event == DomainEventType.Started);
        Assert.Equal(new DomainLifecycleEvent(guest.Uuid, guest.Name, DomainEventType.Stopped, 0), events[^1]); // STOPPED_SHUTDOWN
    }

    [Fact]
    public void Reverting_a_snapshot_restores_the_disk()
    {
        using var guest = TinyGuest.Create(connection);
        using var domain = guest.Lookup();

        domain.Create();
        guest.WaitForSerial("boots=1", BootTimeout);
        domain.Destroy();
        using var snapshot = domain.CreateSnapshotXml("<domainsnapshot><name>after-first-boot</name></domainsnapshot>");

        domain.Create();
        guest.WaitForSerial("boots=2", BootTimeout);
        domain.Destroy();

        domain.RevertToSnapshot(snapshot);
        Assert.Equal(DomainState.Shutoff, domain.GetState().State);
        domain.Create();
        guest.WaitForSerial(TinyGuest.Banner, BootTimeout);
        Assert.Contains("boots=2", guest.SerialLog()); // counted on top of the snapshot's boots=1
        domain.Destroy();

        snapshot.Delete();
        Assert.Empty(domain.ListAllSnapshots());
    }
}
