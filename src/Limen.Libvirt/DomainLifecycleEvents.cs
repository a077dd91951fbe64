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
/// <see cref="Events"/>. Dispose deregisters and completes the reader; it never throws, not even on
/// a connection whose daemon died (see <see cref="LibvirtConnection.ReleaseFailed"/>).
/// </summary>
/// <remarks>
/// Callback ownership: the native callback gets a GCHandle to the channel's writer as its opaque
/// pointer. From a successful registration on, libvirt owns that handle and frees it through
/// FreeOpaque once it has dropped the callback — at deregistration, which on a remote connection
/// happens on the client side before the daemon is told, so a daemon that cannot be told leaves no
/// callback and no handle behind. Registration, deregistration and closing the connection are
/// serialized by the connection, so a callback is never left registered on a closed connection.
/// </remarks>
public sealed unsafe class DomainLifecycleSubscription : IDisposable
{
    private const int LifecycleEventId = 0; // VIR_DOMAIN_EVENT_ID_LIFECYCLE

    private readonly LibvirtConnection connection;
    private readonly Channel<DomainLifecycleEvent> channel;

    private DomainLifecycleSubscription(LibvirtConnection connection, int callbackId, Channel<DomainLifecycleEvent> channel)
    {
        this.connection = connection;
        this.channel = channel;
        CallbackId = callbackId;
    }

    public ChannelReader<DomainLifecycleEvent> Events => channel.Reader;

    internal int CallbackId { get; }

    /// <summary>Registers the native callback. Only <see cref="LibvirtConnection"/> calls it, under its lock.</summary>
    internal static DomainLifecycleSubscription Register(LibvirtConnection connection, ConnectHandle handle)
    {
        var channel = Channel.CreateUnbounded<DomainLifecycleEvent>(new UnboundedChannelOptions { SingleWriter = true });
        var opaque = GCHandle.ToIntPtr(GCHandle.Alloc(channel.Writer));
        var id = NativeMethods.virConnectDomainEventRegisterAny(handle, 0, LifecycleEventId, &OnLifecycleEvent, opaque, &FreeOpaque);
        if (id < 0)
        {
            var error = Native.LastError(nameof(NativeMethods.virConnectDomainEventRegisterAny));
            GCHandle.FromIntPtr(opaque).Free(); // on failure libvirt does not call FreeOpaque
            throw error;
        }

        return new DomainLifecycleSubscription(connection, id, channel);
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

    /// <summary>Ends the reader once the native callback is gone: nothing is written after this.</summary>
    internal void Complete() => channel.Writer.TryComplete();

    /// <summary>Deregisters (once; later calls do nothing) and completes <see cref="Events"/>. Never throws.</summary>
    public void Dispose() => connection.Release(this);
}
