using System.Collections.Immutable;
using System.Threading.Channels;
using Microsoft.Extensions.Options;

namespace Limen.Features.Events;

/// <summary>
/// This server's fan-out of committed events to its SSE clients. The listener hands every batch it
/// read to <see cref="Publish"/>, which only ever tries to enqueue: a client whose buffer is full is
/// cut off (<see cref="EventSubscriber.Overflowed"/>), so no client can slow the listener or the others.
/// </summary>
public sealed class EventHub : IDisposable
{
    private readonly object gate = new();
    private readonly IOptions<EventsOptions> options;
    private readonly ITimer heartbeat;
    // Copy-on-write: publishing reads a snapshot without a lock, (un)subscribing is rare.
    private ImmutableArray<EventSubscriber> subscribers = [];

    public EventHub(IOptions<EventsOptions> options, TimeProvider clock)
    {
        this.options = options;
        var period = options.Value.Heartbeat;
        heartbeat = clock.CreateTimer(_ => Beat(), null, period, period);
    }

    public int Count => subscribers.Length;

    /// <summary>A client of this server, from now on; its buffer holds <see cref="EventsOptions.ClientBufferSize"/> events.</summary>
    public EventSubscriber Subscribe(Guid userId, bool admin)
    {
        var subscriber = new EventSubscriber(this, userId, admin, options.Value.ClientBufferSize);
        lock (gate)
        {
            subscribers = subscribers.Add(subscriber);
        }

        return subscriber;
    }

    /// <summary>Committed events in id order, each to every client that may see it.</summary>
    public void Publish(IReadOnlyList<EventFrame> batch)
    {
        var current = subscribers;
        foreach (var frame in batch)
        {
            foreach (var subscriber in current)
            {
                if (frame.VisibleTo(subscriber.UserId, subscriber.Admin))
                {
                    subscriber.Offer(frame);
                }
            }
        }
    }

    internal void Remove(EventSubscriber subscriber)
    {
        lock (gate)
        {
            subscribers = subscribers.Remove(subscriber);
        }
    }

    private void Beat()
    {
        foreach (var subscriber in subscribers)
        {
            subscriber.Offer(EventFrame.Heartbeat);
        }
    }

    public void Dispose() => heartbeat.Dispose();
}

/// <summary>One SSE client's buffer. Written by the hub, read by the client's request.</summary>
public sealed class EventSubscriber : IDisposable
{
    private readonly EventHub hub;
    private readonly Channel<EventFrame> buffer;
    private readonly CancellationTokenSource cut = new();
    private int overflowed;

    internal EventSubscriber(EventHub hub, Guid userId, bool admin, int capacity)
    {
        this.hub = hub;
        UserId = userId;
        Admin = admin;
        // Wait mode only makes TryWrite answer false when full; nothing ever waits to write.
        buffer = Channel.CreateBounded<EventFrame>(new BoundedChannelOptions(capacity)
        {
            SingleReader = true,
            SingleWriter = false,
            FullMode = BoundedChannelFullMode.Wait,
        });
    }

    public Guid UserId { get; }
    public bool Admin { get; }

    public ChannelReader<EventFrame> Reader => buffer.Reader;

    /// <summary>The client fell a full buffer behind: what it has not read is dropped and it is cut off.</summary>
    public bool Overflowed => Volatile.Read(ref overflowed) == 1;

    /// <summary>
    /// Cancelled when the client overflows. Never disposed: the hub may cancel it after the request
    /// is gone, and a source without timers holds nothing.
    /// </summary>
    public CancellationToken CutToken => cut.Token;

    internal void Offer(EventFrame frame)
    {
        if (buffer.Writer.TryWrite(frame) || Interlocked.Exchange(ref overflowed, 1) == 1)
        {
            return;
        }

        buffer.Writer.TryComplete();
        hub.Remove(this);
        // Asynchronously: the request's callbacks must not run on the listener.
        _ = cut.CancelAsync();
    }

    public void Dispose()
    {
        hub.Remove(this);
        buffer.Writer.TryComplete();
    }
}
