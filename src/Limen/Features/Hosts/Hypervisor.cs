using Limen.Libvirt;
using Microsoft.Extensions.Options;

namespace Limen.Features.Hosts;

/// <summary>libvirtd cannot be reached; requests answer 503 and the next call tries to reconnect.</summary>
public sealed class HypervisorUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// The connection to the local libvirt host. Every call goes through <see cref="Run{T}"/>, which
/// reconnects when libvirtd went away (a dead connection is detected by keepalive or by the
/// failing call) — so the server recovers by itself when libvirtd returns, without a restart.
/// </summary>
public sealed partial class Hypervisor : IDisposable
{
    private readonly Lock gate = new();
    private readonly ILogger<Hypervisor> logger;
    private readonly bool readOnly;
    private LibvirtConnection? connection;
    private bool lastKnownUp;

    public Hypervisor(IOptions<HypervisorOptions> options, ILogger<Hypervisor> logger)
    {
        this.logger = logger;
        Uri = options.Value.Uri;
        readOnly = options.Value.ReadOnly;
        DomainType = ResolveDomainType(options.Value.VirtualizationType, Uri);
    }

    public string Uri { get; }

    /// <summary>The domain type VMs are defined with: kvm, qemu (TCG) or test (libvirt's test driver).</summary>
    public string DomainType { get; }

    /// <summary>Raised (on the calling thread) each time a new connection is opened, e.g. to re-subscribe to events.</summary>
    public event Action<LibvirtConnection>? Connected;

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
        LibvirtConnection fresh;
        lock (gate)
        {
            if (connection is { IsAlive: true })
            {
                return connection;
            }

            // A dead connection is released here, on whichever call notices first; releasing never
            // throws (what libvirt refuses on a dead daemon goes to ReleaseFailed, i.e. the log).
            connection?.Dispose();
            connection = null;
            LibvirtConnection? opened = null;
            try
            {
                opened = readOnly ? LibvirtConnection.OpenReadOnly(Uri) : LibvirtConnection.Open(Uri);
                opened.ReleaseFailed += OnReleaseFailed;
                // Keepalive lets a silently dead daemon show up as !IsAlive within ~15 s.
                opened.SetKeepAlive(5, 3);
                connection = opened;
            }
            catch (LibvirtException e)
            {
                opened?.Dispose();
                if (lastKnownUp)
                {
                    LogUnavailable(logger, Uri, e.Message);
                    lastKnownUp = false;
                }

                throw new HypervisorUnavailableException($"libvirt at {Uri} is unavailable: {e.Message}", e);
            }

            LogConnected(logger, Uri, DomainType, readOnly ? ", read-only" : "");
            lastKnownUp = true;
            fresh = connection;
        }

        Connected?.Invoke(fresh);
        return fresh;
    }

    private void Drop(LibvirtConnection broken, string reason)
    {
        lock (gate)
        {
            if (ReferenceEquals(connection, broken))
            {
                LogLost(logger, Uri, reason);
                connection = null;
                lastKnownUp = false;
                broken.Dispose();
            }
        }
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
        if (uri.StartsWith("test:", StringComparison.Ordinal))
        {
            return "test";
        }

        return setting switch
        {
            "kvm" or "qemu" => setting,
            "auto" => File.Exists("/dev/kvm") && (Directory.Exists("/sys/module/kvm_intel") || Directory.Exists("/sys/module/kvm_amd")) ? "kvm" : "qemu",
            _ => throw new InvalidOperationException($"Limen:Hypervisor:VirtualizationType must be auto, kvm or qemu, not '{setting}'."),
        };
    }

    public void Dispose()
    {
        lock (gate)
        {
            connection?.Dispose();
            connection = null;
        }
    }
}
