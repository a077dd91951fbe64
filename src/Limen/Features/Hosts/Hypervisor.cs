using System.Threading.Channels;
using Limen.Libvirt;

namespace Limen.Features.Hosts;

/// <summary>libvirtd cannot be reached; requests answer 503 and the next call tries to reconnect.</summary>
public sealed class HypervisorUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>What a host's connection tells its one reader (the host's reconcile loop), in order.</summary>
public abstract record HypervisorSignal;

/// <summary>A new connection is open (at start, or after the host was down): events may have been missed meanwhile.</summary>
public sealed record HostUp : HypervisorSignal;

/// <summary>The host stopped answering (once per outage, not per failed call).</summary>
public sealed record HostDown(string Reason) : HypervisorSignal;

/// <summary>A lifecycle event of one of the host's domains.</summary>
public sealed record DomainChanged(DomainLifecycleEvent Event) : HypervisorSignal;

/// <summary>
/// The connection to one libvirt host. Every call goes through <see cref="Run{T}"/>, which
/// reconnects when libvirtd went away (a dead connection is detected by keepalive or by the
/// failing call) — so the server recovers by itself when libvirtd returns, without a restart.
/// Each connection subscribes to the domains' lifecycle events before any caller gets it, so no
/// event is lost to who happens to connect first; the events and the host's ups and downs come
/// out of <see cref="Signals"/>.
/// </summary>
public sealed partial class Hypervisor : IDisposable
{
    private readonly Lock gate = new();
    private readonly ILogger<Hypervisor> logger;
    private readonly bool readOnly;
    // Unbounded: up and down must never be dropped, and lifecycle events are few (a handful per VM action).
    private readonly Channel<HypervisorSignal> signals = Channel.CreateUnbounded<HypervisorSignal>(new UnboundedChannelOptions { SingleReader = true });
    private LibvirtConnection? connection;
    // null until the first attempt: the first attempt's outcome is a transition too (host.up or host.down at start).
    private bool? up;

    public Hypervisor(string uri, string domainType, bool readOnly, ILogger<Hypervisor> logger)
    {
        this.logger = logger;
        this.readOnly = readOnly;
        Uri = uri;
        DomainType = domainType;
    }

    public string Uri { get; }

    /// <summary>The domain type VMs are defined with: kvm, qemu (TCG) or test (libvirt's test driver).</summary>
    public string DomainType { get; }

    /// <summary>Ups, downs and lifecycle events of every connection this hypervisor opens; for one reader.</summary>
    public ChannelReader<HypervisorSignal> Signals => signals.Reader;

    public T Run<T>(Func<LibvirtConnection, T> action)
    {
        var current = Connect();
        try
        {
            return action(current);
        }
        catch (LibvirtException e) when (IsConnectionLoss(e) || !current.IsAlive)
        {
            Drop(current, e.Message);
            throw new HypervisorUnavailableException($"libvirt at {Uri} is unavailable: {e.Message}", e);
        }
        catch (ObjectDisposedException e) when (!current.IsAlive)
        {
            // Another caller found this connection dead and released it while this call was using it.
            throw new HypervisorUnavailableException($"libvirt at {Uri} is unavailable: the connection was lost", e);
        }
    }

    /// <summary>
    /// Runs <paramref name="action"/> with this host's connection and <paramref name="other"/>'s (a
    /// migration holds both). A libvirt error is blamed on a host only when that host's connection is
    /// dead: an error about the work itself (a refused or failed migration) leaves both hosts up.
    /// </summary>
    public T RunWith<T>(Hypervisor other, Func<LibvirtConnection, LibvirtConnection, T> action)
    {
        var mine = Connect();
        var theirs = other.Connect();
        try
        {
            return action(mine, theirs);
        }
        catch (LibvirtException e) when (!mine.IsAlive || !theirs.IsAlive)
        {
            var dead = !mine.IsAlive ? this : other;
            dead.Drop(dead == this ? mine : theirs, e.Message);
            throw new HypervisorUnavailableException($"libvirt at {dead.Uri} is unavailable: {e.Message}", e);
        }
    }

    public void Run(Action<LibvirtConnection> action) => Run(c =>
    {
        action(c);
        return true;
    });

    /// <summary>True when a call to libvirt succeeds now (reconnecting if needed).</summary>
    public bool Probe()
    {
        try
        {
            // A round trip, not just IsAlive: right after the daemon died the client may not have
            // read the end of its socket yet and would still call the connection alive.
            return Run(c =>
            {
                c.GetLibVersion();
                return c.IsAlive;
            });
        }
        catch (Exception e) when (e is HypervisorUnavailableException or LibvirtException)
        {
            return false;
        }
    }

    private LibvirtConnection Connect()
    {
        lock (gate)
        {
            if (connection is { IsAlive: true })
            {
                return connection;
            }

            if (connection is not null)
            {
                // Keepalive (or the daemon's socket closing) found it dead before any call failed on it.
                MarkDown(connection, "the connection died");
            }

            LibvirtConnection? opened = null;
            try
            {
                opened = readOnly ? LibvirtConnection.OpenReadOnly(Uri) : LibvirtConnection.Open(Uri);
                opened.ReleaseFailed += OnReleaseFailed;
                // Keepalive lets a silently dead daemon show up as !IsAlive within ~15 s.
                opened.SetKeepAlive(5, 3);
                // Before anyone gets the connection: whatever happens to a domain from now on is seen.
                Pump(opened.SubscribeDomainLifecycle());
                connection = opened;
            }
            catch (LibvirtException e)
            {
                opened?.Dispose();
                if (up != false)
                {
                    LogUnavailable(logger, Uri, e.Message);
                    up = false;
                    signals.Writer.TryWrite(new HostDown(e.Message));
                }

                throw new HypervisorUnavailableException($"libvirt at {Uri} is unavailable: {e.Message}", e);
            }

            LogConnected(logger, Uri, DomainType, readOnly ? ", read-only" : "");
            up = true;
            signals.Writer.TryWrite(new HostUp());
            return connection;
        }
    }

    /// <summary>Moves the subscription's events into <see cref="Signals"/> until its connection is released.</summary>
    private void Pump(DomainLifecycleSubscription subscription) => _ = Task.Run(async () =>
    {
        using (subscription)
        {
            await foreach (var change in subscription.Events.ReadAllAsync())
            {
                signals.Writer.TryWrite(new DomainChanged(change));
            }
        }
    });

    private void Drop(LibvirtConnection broken, string reason)
    {
        lock (gate)
        {
            if (ReferenceEquals(connection, broken))
            {
                MarkDown(broken, reason);
            }
        }
    }

    /// <summary>Releases the current connection, which is dead; the host is down until a new one opens. Under the gate.</summary>
    private void MarkDown(LibvirtConnection broken, string reason)
    {
        LogLost(logger, Uri, reason);
        connection = null;
        up = false;
        // A dead connection is released on whichever call notices first; releasing never throws
        // (what libvirt refuses on a dead daemon goes to ReleaseFailed, i.e. the log).
        broken.Dispose();
        signals.Writer.TryWrite(new HostDown(reason));
    }

    private void OnReleaseFailed(LibvirtException e) => LogReleaseFailed(logger, Uri, e.Function, e.Message);

    [LoggerMessage(EventId = 1100, Level = LogLevel.Information, Message = "Connected to libvirt at {Uri} (domain type {DomainType}{Mode})")]
    private static partial void LogConnected(ILogger logger, string uri, string domainType, string mode);

    [LoggerMessage(EventId = 1101, Level = LogLevel.Warning, Message = "libvirt at {Uri} is unavailable: {Message}")]
    private static partial void LogUnavailable(ILogger logger, string uri, string message);

    [LoggerMessage(EventId = 1102, Level = LogLevel.Warning, Message = "Lost the libvirt connection to {Uri}: {Reason}")]
    private static partial void LogLost(ILogger logger, string uri, string reason);

    // Expected once per outage: releasing a connection whose daemon died cannot tell the daemon.
    [LoggerMessage(EventId = 1103, Level = LogLevel.Information, Message = "Released the libvirt connection to {Uri}; the daemon could not be told ({Function}: {Message})")]
    private static partial void LogReleaseFailed(ILogger logger, string uri, string? function, string message);

    private static bool IsConnectionLoss(LibvirtException e) =>
        e.Code is LibvirtErrorCode.SystemError or LibvirtErrorCode.Rpc or LibvirtErrorCode.NoConnect or LibvirtErrorCode.InvalidConn;

    /// <summary>
    /// auto → kvm only where a real KVM module is loaded: some machines expose /dev/kvm from a nested
    /// module that cannot boot a BIOS guest, where libvirt would still advertise kvm.
    /// </summary>
    public static string ResolveDomainType(string setting, string uri)
    {
        // test:///default, or the test driver of another daemon (test+unix:///default?socket=…).
        if (uri.StartsWith("test:", StringComparison.Ordinal) || uri.StartsWith("test+", StringComparison.Ordinal))
        {
            return "test";
        }

        return setting switch
        {
            "kvm" or "qemu" => setting,
            // This machine's KVM: for a host elsewhere, its options say kvm or qemu.
            "auto" => File.Exists("/dev/kvm") && (Directory.Exists("/sys/module/kvm_intel") || Directory.Exists("/sys/module/kvm_amd")) ? "kvm" : "qemu",
            _ => throw new InvalidOperationException($"VirtualizationType of the host at {uri} must be auto, kvm or qemu, not '{setting}'."),
        };
    }

    public void Dispose()
    {
        lock (gate)
        {
            connection?.Dispose();
            connection = null;
            signals.Writer.TryComplete();
        }
    }
}
