using System.Runtime.InteropServices;

namespace Limen.Libvirt;

/// <summary>
/// A read-write libvirt connection (virConnectPtr). libvirt connections are thread-safe and this
/// wrapper holds no mutable state besides its list of event subscriptions (guarded by a lock), so
/// one instance can serve the whole process. Objects obtained from it hold their own reference to
/// the native connection and may outlive this wrapper.
/// </summary>
/// <remarks>
/// Releasing never throws: <see cref="Dispose"/> and <see cref="DomainLifecycleSubscription.Dispose"/>
/// run on connections whose daemon died, where libvirt fails the calls that tell the daemon (e.g.
/// "client socket is closed") after it has let go of its own side. Those failures are reported
/// through <see cref="ReleaseFailed"/> instead.
/// </remarks>
public sealed unsafe class LibvirtConnection : IDisposable
{
    private readonly ConnectHandle handle;
    // Serializes registering and releasing subscriptions with closing the handle, so no callback
    // can stay registered on a closed connection and no release can meet a closed handle.
    private readonly Lock gate = new();
    private readonly List<DomainLifecycleSubscription> subscriptions = [];

    private LibvirtConnection(ConnectHandle handle, string uri)
    {
        this.handle = handle;
        Uri = uri;
    }

    internal ConnectHandle Handle => handle;

    /// <summary>The URI this connection was opened with, e.g. <c>qemu:///system</c>.</summary>
    public string Uri { get; }

    /// <summary>
    /// A release (deregistering a subscription, on its own or in <see cref="Dispose"/>) that libvirt
    /// reported as failed, typically because the daemon is gone. Raised on the releasing thread after
    /// the release; libvirt has dropped the callback on this side regardless. Handlers must not throw.
    /// </summary>
    public event Action<LibvirtException>? ReleaseFailed;

    /// <summary>Opens a read-write connection (virConnectOpen).</summary>
    /// <exception cref="LibvirtException">The hypervisor cannot be reached (e.g. <see cref="LibvirtErrorCode.SystemError"/> when libvirtd is down).</exception>
    public static LibvirtConnection Open(string uri)
    {
        ArgumentException.ThrowIfNullOrEmpty(uri);
        Native.EnsureInitialized();
        return new LibvirtConnection(Native.Check(NativeMethods.virConnectOpen(uri)), uri);
    }

    /// <summary>
    /// Opens a read-only connection (virConnectOpenReadOnly): queries work, and libvirt itself refuses
    /// every change (define, start, destroy, …) with <see cref="LibvirtErrorCode.OperationDenied"/>.
    /// </summary>
    /// <exception cref="LibvirtException">The hypervisor cannot be reached.</exception>
    public static LibvirtConnection OpenReadOnly(string uri)
    {
        ArgumentException.ThrowIfNullOrEmpty(uri);
        Native.EnsureInitialized();
        return new LibvirtConnection(Native.Check(NativeMethods.virConnectOpenReadOnly(uri)), uri);
    }

    /// <summary>False once the daemon went away or the connection was closed (virConnectIsAlive).</summary>
    public bool IsAlive => !handle.IsClosed && NativeMethods.virConnectIsAlive(handle) == 1;

    /// <summary>
    /// Makes a connection to a daemon probe it every <paramref name="intervalSeconds"/> and close after
    /// <paramref name="count"/> unanswered probes, so a dead daemon is noticed (<see cref="IsAlive"/>
    /// turns false). Returns false when keepalive is unavailable: the daemon does not support it, or
    /// the driver runs in-process (test:///), where there is no daemon to lose.
    /// </summary>
    public bool SetKeepAlive(int intervalSeconds, uint count)
    {
        var result = NativeMethods.virConnectSetKeepAlive(handle, intervalSeconds, count);
        if (result < 0)
        {
            var error = Native.LastError(nameof(NativeMethods.virConnectSetKeepAlive));
            return error.Code == LibvirtErrorCode.NoSupport ? false : throw error;
        }
        return result == 0;
    }

    public string GetHostname() => Native.TakeString(NativeMethods.virConnectGetHostname(handle));

    /// <summary>Version of the libvirt library serving the connection (the daemon's for remote URIs).</summary>
    public Version GetLibVersion()
    {
        Native.Check(NativeMethods.virConnectGetLibVersion(handle, out var version));
        var v = version.Value;
        return new Version((int)(v / 1_000_000), (int)(v / 1000 % 1000), (int)(v % 1000));
    }

    /// <summary>The capabilities XML (host CPU, guest architectures and domain types).</summary>
    public string GetCapabilities() => Native.TakeString(NativeMethods.virConnectGetCapabilities(handle));

    public NodeInfo GetNodeInfo()
    {
        Native.Check(NativeMethods.virNodeGetInfo(handle, out var info));
        return new NodeInfo(Native.FixedString(info.Model, 32), info.Memory.Value, (int)info.Cpus, (int)info.Mhz,
            (int)info.Nodes, (int)info.Sockets, (int)info.Cores, (int)info.Threads);
    }

    /// <summary>Cumulative host CPU times in ns over all CPUs: keys such as kernel, user, idle, iowait.</summary>
    public IReadOnlyDictionary<string, ulong> GetNodeCpuStats() =>
        ReadNodeStats(&NativeMethods.virNodeGetCPUStats, -1, nameof(NativeMethods.virNodeGetCPUStats)); // VIR_NODE_CPU_STATS_ALL_CPUS

    /// <summary>Host memory in KiB over all NUMA cells: keys total, free, buffers, cached.</summary>
    public IReadOnlyDictionary<string, ulong> GetNodeMemoryStats() =>
        ReadNodeStats(&NativeMethods.virNodeGetMemoryStats, -1, nameof(NativeMethods.virNodeGetMemoryStats)); // VIR_NODE_MEMORY_STATS_ALL_CELLS

    /// <summary>Both node-stats calls work alike: ask for the count, then fill an array of that size.</summary>
    private Dictionary<string, ulong> ReadNodeStats(
        delegate*<ConnectHandle, int, VirNodeStatsEntry*, ref int, uint, int> call, int which, string function)
    {
        int count = 0;
        Native.Check(call(handle, which, null, ref count, 0), function);
        var entries = new VirNodeStatsEntry[count];
        fixed (VirNodeStatsEntry* p = entries)
        {
            Native.Check(call(handle, which, p, ref count, 0), function);
        }
        return ToDictionary(entries.AsSpan(0, count));
    }

    private static Dictionary<string, ulong> ToDictionary(Span<VirNodeStatsEntry> entries)
    {
        var result = new Dictionary<string, ulong>(entries.Length);
        foreach (ref var e in entries)
        {
            fixed (byte* field = e.Field)
            {
                result[Native.FixedString(field, 80)] = e.Value;
            }
        }
        return result;
    }

    /// <summary>Defines (or redefines, when the XML's UUID exists) a persistent domain. Does not start it.</summary>
    /// <exception cref="LibvirtException">Invalid XML (<see cref="LibvirtErrorCode.XmlError"/> and others) or a name/UUID clash (<see cref="LibvirtErrorCode.OperationFailed"/>).</exception>
    public LibvirtDomain DefineDomain(string xml)
    {
        ArgumentNullException.ThrowIfNull(xml);
        return new LibvirtDomain(Native.Check(NativeMethods.virDomainDefineXML(handle, xml)));
    }

    /// <summary>The domain with this UUID, or null when there is none.</summary>
    public LibvirtDomain? LookupDomainByUuid(Guid uuid)
    {
        Span<byte> raw = stackalloc byte[16];
        uuid.TryWriteBytes(raw, bigEndian: true, out _);
        fixed (byte* p = raw)
        {
            return LookupDomain(NativeMethods.virDomainLookupByUUID(handle, p), nameof(NativeMethods.virDomainLookupByUUID));
        }
    }

    /// <summary>The domain with this name, or null when there is none.</summary>
    public LibvirtDomain? LookupDomainByName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return LookupDomain(NativeMethods.virDomainLookupByName(handle, name), nameof(NativeMethods.virDomainLookupByName));
    }

    // "Not found" is an expected answer to a lookup (a VM row whose domain is gone), so it is null;
    // every other failure (daemon down, RPC error) stays an exception.
    private static LibvirtDomain? LookupDomain(DomainHandle found, string function)
    {
        if (!found.IsInvalid)
        {
            return new LibvirtDomain(found);
        }
        var error = Native.LastError(function);
        found.Dispose();
        return error.Code == LibvirtErrorCode.NoDomain ? null : throw error;
    }

    /// <summary>All domains matching <paramref name="flags"/> (virConnectListAllDomains). Dispose each one.</summary>
    public IReadOnlyList<LibvirtDomain> ListAllDomains(ListDomainsFlags flags = ListDomainsFlags.All)
    {
        var count = Native.Check(NativeMethods.virConnectListAllDomains(handle, out var array, (uint)flags));
        try
        {
            // Adopt every pointer first so none leaks if reading a name/UUID fails later.
            var handles = new DomainHandle[count];
            for (var i = 0; i < count; i++)
            {
                handles[i] = new DomainHandle(array[i]);
            }
            return handles.Select(h => new LibvirtDomain(h)).ToArray();
        }
        finally
        {
            NativeMemory.Free(array);
        }
    }

    /// <summary>
    /// Bulk statistics for all domains matching <paramref name="flags"/> in one call
    /// (virConnectGetAllDomainStats) — what a metrics scraper wants.
    /// </summary>
    public IReadOnlyList<DomainStats> GetAllDomainStats(
        DomainStatsTypes types = DomainStatsTypes.Default, ListDomainsFlags flags = ListDomainsFlags.All)
    {
        var count = Native.Check(NativeMethods.virConnectGetAllDomainStats(handle, (uint)types, out var records, (uint)flags));
        return DomainStats.FromRecords(records, count);
    }

    /// <summary>
    /// Streams domain lifecycle events (defined, started, stopped, ...) of this connection until the
    /// subscription or this connection is disposed. Delivered by libvirt's event loop thread.
    /// libvirt tracks one such registration per connection: share the subscription, or open another
    /// connection, rather than subscribing twice.
    /// </summary>
    /// <exception cref="ObjectDisposedException">This connection is disposed.</exception>
    /// <exception cref="LibvirtException">libvirt refused the registration: the daemon just went away, or
    /// this connection has a subscription already (<see cref="LibvirtErrorCode.InvalidArg"/>, "event callback already tracked").</exception>
    public DomainLifecycleSubscription SubscribeDomainLifecycle()
    {
        lock (gate)
        {
            var subscription = DomainLifecycleSubscription.Register(this, handle);
            subscriptions.Add(subscription);
            return subscription;
        }
    }

    internal void Release(DomainLifecycleSubscription subscription)
    {
        LibvirtException? failure;
        lock (gate)
        {
            if (!subscriptions.Remove(subscription))
            {
                return; // released before, by itself or by Dispose
            }

            failure = Deregister(subscription);
        }

        subscription.Complete();
        Report(failure);
    }

    // Under the gate, with the handle open (Dispose closes it only after releasing every subscription).
    private LibvirtException? Deregister(DomainLifecycleSubscription subscription) =>
        NativeMethods.virConnectDomainEventDeregisterAny(handle, subscription.CallbackId) < 0
            ? Native.LastError(nameof(NativeMethods.virConnectDomainEventDeregisterAny))
            : null;

    private void Report(LibvirtException? failure)
    {
        if (failure is not null)
        {
            ReleaseFailed?.Invoke(failure);
        }
    }

    /// <summary>Releases every subscription, then the connection. Never throws; see <see cref="ReleaseFailed"/>.</summary>
    public void Dispose()
    {
        DomainLifecycleSubscription[] released;
        var failures = new List<LibvirtException?>();
        lock (gate)
        {
            released = [.. subscriptions];
            subscriptions.Clear();
            failures.AddRange(released.Select(Deregister));
            // virConnectClose only drops a reference; the remote driver's close RPC, if the daemon is
            // gone, fails inside libvirt and is not reported to the caller.
            handle.Dispose();
        }

        foreach (var subscription in released)
        {
            subscription.Complete();
        }

        failures.ForEach(Report);
    }
}
