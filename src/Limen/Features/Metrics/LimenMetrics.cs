using Prometheus;

namespace Limen.Features.Metrics;

/// <summary>
/// Every collector Limen exports, on a registry of its own (not prometheus-net's static default),
/// so that two servers in one process — as in the tests — never share counts.
/// The names and labels of the seed metrics are a contract (docs/api.md#metrics).
/// </summary>
public sealed class LimenMetrics
{
    public LimenMetrics()
    {
        Registry = Prometheus.Metrics.NewCustomRegistry();
        var factory = Prometheus.Metrics.WithCustomRegistry(Registry);

        HttpRequests = factory.CreateCounter("http_requests_total",
            "HTTP requests served, by method, route template and status code.", ["method", "route", "status"]);
        HttpRequestDuration = factory.CreateHistogram("http_request_duration_seconds",
            "Time to serve an HTTP request, by method and route template.", ["method", "route"],
            new HistogramConfiguration { Buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] });
        AuthFailures = factory.CreateCounter("auth_failure_total",
            "Failed authentication attempts, by reason.", ["reason"]);
        DatabaseUp = factory.CreateGauge("limen_database_up",
            "1 when the last database probe succeeded, else 0.");
        BuildInfo = factory.CreateGauge("limen_build_info", "Always 1; the version label says which Limen runs.", ["version"]);
        BuildInfo.WithLabels(VersionInfo.Version).Set(1);
        ServerInfo = factory.CreateGauge("limen_server_info", "Always 1; the server_id label says which server this is.", ["server_id"]);
        Leader = factory.CreateGauge("limen_leader", "1 while this server is the leader (runs the once-only loops), else 0.", ["server_id"]);

        Host = new HostMetrics(factory);
        // Declared here so the contract's names exist from the start; the quota and console features move them.
        QuotaDenials = factory.CreateCounter("vm_quota_denied_total",
            "VM requests refused by quota, by resource (vms, vcpus, memory, disk) and user id.", ["resource", "user_id"]);
        ConsoleActiveSessions = factory.CreateGauge("console_active_sessions", "Console (VNC) sessions open right now.");
        // Absent until the VM feature probes libvirt: an exported 0 would page LibvirtDown for a probe never made.
        LibvirtUp = factory.CreateGauge("limen_libvirt_up", "1 when the last probe of the local host's libvirt succeeded, else 0.",
            new GaugeConfiguration { SuppressInitialValue = true });
        // 0 is the truth until a backup or drill succeeds ("never"), and BackupTooOld/RestoreDrillStale read it so.
        BackupLastSuccess = factory.CreateGauge("limen_backup_last_success_timestamp_seconds",
            "Unix time of the last successful backup; 0 = never.");
        RestoreDrillLastSuccess = factory.CreateGauge("limen_restore_drill_last_success_timestamp_seconds",
            "Unix time of the last successful restore drill; 0 = never.");
        VmsByState = factory.CreateGauge("limen_vms", "VMs on this server's hosts, by state.", ["state"]);
        // host: a host's name, from the registry (bounded by the hosts there are); set by the leader's reconciler.
        HostVms = factory.CreateGauge("limen_host_vms", "VMs on one host, by state (the leader's last pass).", ["host", "state"]);
        HostLibvirtUp = factory.CreateGauge("limen_host_libvirt_up", "1 when the last probe of the host's libvirt succeeded, else 0.", ["host"]);
        UnknownDomains = factory.CreateGauge("limen_unknown_domains",
            "Domains carrying Limen's name prefix that no VM row knows (reported, never touched).");
        ReconcileDuration = factory.CreateHistogram("limen_reconcile_duration_seconds",
            "Time of one reconciliation pass between one host's libvirt and the database.");
        SnapshotOperations = factory.CreateCounter("limen_snapshot_operations_total",
            "Snapshot operations by operation (create, revert, delete) and result.", ["operation", "result"]);
    }

    public CollectorRegistry Registry { get; }
    public Counter HttpRequests { get; }
    public Histogram HttpRequestDuration { get; }
    public Counter AuthFailures { get; }
    public Gauge DatabaseUp { get; }
    public Gauge BuildInfo { get; }
    public Gauge ServerInfo { get; }
    public Gauge Leader { get; }
    public HostMetrics Host { get; }
    public Counter QuotaDenials { get; }
    public Gauge ConsoleActiveSessions { get; }
    public Gauge LibvirtUp { get; }
    public Gauge BackupLastSuccess { get; }
    public Gauge RestoreDrillLastSuccess { get; }
    public Gauge VmsByState { get; }
    public Gauge HostVms { get; }
    public Gauge HostLibvirtUp { get; }
    public Gauge UnknownDomains { get; }
    public Histogram ReconcileDuration { get; }
    public Counter SnapshotOperations { get; }
}

public static class AuthFailureReasons
{
    public const string InvalidCredentials = "invalid_credentials";
    public const string Disabled = "disabled";
    public const string RateLimited = "rate_limited";
    public const string InvalidToken = "invalid_token";
    public const string InvalidRefreshToken = "invalid_refresh_token";
    public const string RefreshTokenReuse = "refresh_token_reuse";
    public const string InvalidWebhookToken = "invalid_webhook_token";

    /// <summary>The right password for a registered account that no admin has approved yet.</summary>
    public const string Pending = "pending_approval";
}
