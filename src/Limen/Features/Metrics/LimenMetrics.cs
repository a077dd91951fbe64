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
    }

    public CollectorRegistry Registry { get; }
    public Counter HttpRequests { get; }
    public Histogram HttpRequestDuration { get; }
    public Counter AuthFailures { get; }
    public Gauge DatabaseUp { get; }
    public Gauge BuildInfo { get; }
}

public static class AuthFailureReasons
{
    public const string InvalidCredentials = "invalid_credentials";
    public const string Disabled = "disabled";
    public const string RateLimited = "rate_limited";
    public const string InvalidToken = "invalid_token";
    public const string InvalidRefreshToken = "invalid_refresh_token";
    public const string RefreshTokenReuse = "refresh_token_reuse";
}
