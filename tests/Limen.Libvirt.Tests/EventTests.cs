namespace Limen.Libvirt.Tests;

public sealed class EventTests
{
    private static async Task<DomainLifecycleEvent> NextFor(DomainLifecycleSubscription subscription, Guid uuid)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (true)
        {
            var e = await subscription.Events.ReadAsync(timeout.Token);
            if (e.Uuid == uuid)
            {
                return e;
            }
        }
    }

    [Fact]
    public async Task Lifecycle_events_arrive_in_order()
    {
        using var connection = LibvirtConnection.Open(TestDriver.Uri);
        using var subscription = connection.SubscribeDomainLifecycle();

        var temp = TestDriver.Define(connection, "events");
        var uuid = temp.Domain.Uuid;
        temp.Domain.Create();
        temp.Domain.Suspend();
        temp.Domain.Resume();
        temp.Domain.Destroy();
        temp.Dispose();

        var defined = await NextFor(subscription, uuid);
        Assert.Equal(DomainEventType.Defined, defined.Event);
        Assert.Equal(temp.Domain.Name, defined.Name);
        Assert.Equal(DomainEventType.Started, (await NextFor(subscription, uuid)).Event);
        Assert.Equal(DomainEventType.Suspended, (await NextFor(subscription, uuid)).Event);
        Assert.Equal(DomainEventType.Resumed, (await NextFor(subscription, uuid)).Event);
        var stopped = await NextFor(subscription, uuid);
        Assert.Equal(DomainEventType.Stopped, stopped.Event);
        Assert.Equal(1, stopped.Detail); // VIR_DOMAIN_EVENT_STOPPED_DESTROYED
        Assert.Equal(DomainEventType.Undefined, (await NextFor(subscription, uuid)).Event);
    }

    [Fact]
    public async Task Disposed_subscription_completes_and_receives_nothing_more()
    {
        using var connection = LibvirtConnection.Open(TestDriver.Uri);
        var subscription = connection.SubscribeDomainLifecycle();

        subscription.Dispose();
        using var temp = TestDriver.Define(connection, "noevents");
        temp.Domain.Create();

        // Other tests share the test driver, so events of their domains may have been queued before
        // the Dispose; none can be about a domain defined after it, and the reader completes.
        await foreach (var e in subscription.Events.ReadAllAsync())
        {
            Assert.NotEqual(temp.Domain.Uuid, e.Uuid);
        }
        Assert.True(subscription.Events.Completion.IsCompleted);
        subscription.Dispose(); // idempotent
    }

    [Fact]
    public async Task Disposing_the_connection_ends_its_subscriptions()
    {
        var connection = LibvirtConnection.Open(TestDriver.Uri);
        var subscription = connection.SubscribeDomainLifecycle();

        connection.Dispose();

        Assert.False(await subscription.Events.WaitToReadAsync());
    }
}
