using System.Runtime.InteropServices;
using System.Threading.Channels;

namespace Limen.Libvirt;

/// <summary>virDomainEventType. The detail that comes with it is a virDomainEvent*DetailType of that type.</summary>
public enum DomainEventType
{
    Defined = 0,
    Undefined = 1,
    Started = 2,
    Suspended = 3,
    Resumed = 4,
    Stopped = 5,
    Shutdown = 6,
    PMSuspended = 7,
    Crashed = 8,
}

/// <summary>One VIR_DOMAIN_EVENT_ID_LIFECYCLE event.</summary>
public readonly record struct DomainLifecycleEvent(Guid Uuid, string Name, DomainEventType Event, int Detail);

/// <summary>
/// A registration for lifecycle events of all domains of a connection. Events are queued (unbounded)
/// by libvirt's event loop thread, so no consumer code ever runs on that thread; read them from
/// <see cref="Events"/>. Dispose deregisters and completes the reader.
/// </summary>
public sealed unsafe class DomainLifecycleSubscription : IDisposable
{
    private const int LifecycleEventId = 0; // VIR_DOMAIN_EVENT_ID_LIFECYCLE

    private readonly LibvirtConnection connection;
    private readonly Channel<DomainLifecycleEvent> channel =
        Channel.CreateUnbounded<DomainLifecycleEvent>(new UnboundedChannelOptions { SingleWriter = true });
    private int callbackId = -1;

    private DomainLifecycleSubscription(LibvirtConnection connection) => this.connection = connection;

    public ChannelReader<DomainLifecycleEvent> Events => channel.Reader;

    internal static DomainLifecycleSubscription Register(LibvirtConnection connection)
    {
        var subscription = new DomainLifecycleSubscription(connection);
        // libvirt owns this GCHandle from now on and frees it through FreeOpaque after deregistration,
        // which happens only once no callback can be running any more.
        var opaque = GCHandle.ToIntPtr(GCHandle.Alloc(subscription.channel.Writer));
        var id = NativeMethods.virConnectDomainEventRegisterAny(
            connection.Handle, 0, LifecycleEventId, &OnLifecycleEvent, opaque, &FreeOpaque);
        if (id < 0)
        {
            var error = Native.LastError(nameof(NativeMethods.virConnectDomainEventRegisterAny));
            GCHandle.FromIntPtr(opaque).Free(); // on failure libvirt does not call FreeOpaque
            throw error;
        }
        subscription.callbackId = id;
        return subscription;
    }

    // Runs on the event loop thread with a borrowed virDomainPtr. It must not throw (an exception
    // here would end the process), and nothing in it can: TryWrite on an unbounded channel only
    // returns false once the channel is completed.
    [UnmanagedCallersOnly]
    private static int OnLifecycleEvent(nint conn, nint domain, int eventType, int detail, nint opaque)
    {
        var writer = (ChannelWriter<DomainLifecycleEvent>)GCHandle.FromIntPtr(opaque).Target!;
        byte* uuid = stackalloc byte[16];
        var uuidOk = NativeMethods.virDomainGetUUID(domain, uuid) == 0;
        var name = Marshal.PtrToStringUTF8(NativeMethods.virDomainGetName(domain)) ?? "";
        writer.TryWrite(new DomainLifecycleEvent(uuidOk ? Native.ToGuid(uuid) : Guid.Empty, name, (DomainEventType)eventType, detail));
        return 0;
    }

    [UnmanagedCallersOnly]
    private static void FreeOpaque(nint opaque) => GCHandle.FromIntPtr(opaque).Free();

    public void Dispose()
    {
        var id = Interlocked.Exchange(ref callbackId, -1);
        if (id < 0)
        {
            return;
        }
        connection.Forget(this);
        // A connection that is already closed has dropped its callbacks itself.
        if (!connection.Handle.IsClosed)
        {
            Native.Check(NativeMethods.virConnectDomainEventDeregisterAny(connection.Handle, id));
        }
        channel.Writer.TryComplete();
    }
}
