using System.Collections.Concurrent;
using Limen.TestSupport;

namespace Limen.Libvirt.Tests;

/// <summary>Tests that kill libvirtd: they run alone, after every other test of this project.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class DaemonRestartCollection
{
    public const string Name = "libvirtd-restart";
}

/// <summary>The binding on a connection whose daemon was SIGKILLed, as happens when libvirtd crashes.</summary>
[Collection(DaemonRestartCollection.Name)]
public sealed class DaemonDeathTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Releasing_the_subscriptions_and_the_connection_of_a_dead_daemon_never_throws_and_reports_what_libvirt_refused()
    {
        // One connection per way a subscription ends: on its own, and with its connection.
        var alone = LibvirtConnection.Open(LibvirtDaemon.Uri);
        var closed = LibvirtConnection.Open(LibvirtDaemon.Uri);
        var aloneFailures = new ConcurrentQueue<LibvirtException>();
        var closedFailures = new ConcurrentQueue<LibvirtException>();
        alone.ReleaseFailed += aloneFailures.Enqueue;
        closed.ReleaseFailed += closedFailures.Enqueue;
        var aloneSubscription = alone.SubscribeDomainLifecycle();
        var closedSubscription = closed.SubscribeDomainLifecycle();
        try
        {
            await LibvirtDaemon.KillAsync(Deadline);
            await LibvirtDaemon.WaitAsync(() => Task.FromResult(!alone.IsAlive && !closed.IsAlive), Deadline, "the connections to notice");

            aloneSubscription.Dispose();
            aloneSubscription.Dispose();
            alone.Dispose();
            closed.Dispose();
            closed.Dispose();
            closedSubscription.Dispose();

            Assert.True(aloneSubscription.Events.Completion.IsCompleted);
            Assert.True(closedSubscription.Events.Completion.IsCompleted);
            Assert.False(alone.IsAlive);
            Assert.False(closed.IsAlive);
            // Deregistering has to tell the daemon, which is gone: reported once per subscription, never thrown.
            foreach (var failure in new[] { Assert.Single(aloneFailures), Assert.Single(closedFailures) })
            {
                Assert.Equal("virConnectDomainEventDeregisterAny", failure.Function);
                Assert.False(string.IsNullOrWhiteSpace(failure.Message));
            }
        }
        finally
        {
            alone.Dispose();
            closed.Dispose();
            await LibvirtDaemon.EnsureRunningAsync(Deadline);
        }

        // A connection to the restarted daemon subscribes and hears events again.
        using var fresh = LibvirtConnection.Open(LibvirtDaemon.Uri);
        using var subscription = fresh.SubscribeDomainLifecycle();
        var uuid = Guid.NewGuid();
        var name = TestDriver.UniqueName("restarted");
        using (var domain = fresh.DefineDomain($"<domain type='qemu'><name>{name}</name><uuid>{uuid}</uuid><memory unit='MiB'>64</memory><os><type arch='x86_64'>hvm</type></os></domain>"))
        {
            domain.Undefine();
        }

        using var timeout = new CancellationTokenSource(Deadline);
        var seen = new List<DomainEventType>();
        while (seen.Count < 2)
        {
            var e = await subscription.Events.ReadAsync(timeout.Token);
            if (e.Uuid == uuid)
            {
                seen.Add(e.Event);
            }
        }

        Assert.Equal([DomainEventType.Defined, DomainEventType.Undefined], seen);
    }
}
