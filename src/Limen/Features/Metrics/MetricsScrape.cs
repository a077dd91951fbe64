using System.Net;
using System.Security.Claims;
using System.Text.Encodings.Web;
using Limen.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace Limen.Features.Metrics;

public enum ScrapeVerdict
{
    Allowed,

    /// <summary>A scrape token is configured and the request did not present it: 401.</summary>
    TokenRequired,

    /// <summary>No token is configured and the client is neither loopback nor in a trusted network: 403.</summary>
    NetworkNotTrusted,
}

/// <summary>
/// Who may read /api/metrics. It names users (vm_quota_denied_total{user_id}), so it is not for
/// everybody: with a scrape token configured, exactly the holders of that token; without one,
/// loopback and the configured trusted networks.
/// </summary>
public sealed class MetricsScrapePolicy(IOptionsMonitor<MetricsOptions> options)
{
    private readonly IReadOnlyList<System.Net.IPNetwork> trusted = ParseNetworks(options.CurrentValue.TrustedNetworks);

    public ScrapeVerdict Check(HttpContext context) => Decide(
        options.CurrentValue.ScrapeTokenConfigured,
        context.User.Identity is { IsAuthenticated: true, AuthenticationType: MetricsScrapeAuthenticationHandler.SchemeName },
        context.Connection.RemoteIpAddress,
        trusted);

    /// <param name="client">The client's address; null for a Unix socket, which only this machine can reach.</param>
    public static ScrapeVerdict Decide(bool tokenConfigured, bool tokenPresented, IPAddress? client, IReadOnlyList<System.Net.IPNetwork> trusted)
    {
        if (tokenConfigured)
        {
            return tokenPresented ? ScrapeVerdict.Allowed : ScrapeVerdict.TokenRequired;
        }

        if (client is null)
        {
            return ScrapeVerdict.Allowed;
        }

        // A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d; networks are written as IPv4.
        var address = client.IsIPv4MappedToIPv6 ? client.MapToIPv4() : client;
        return IPAddress.IsLoopback(address) || trusted.Any(network => network.Contains(address))
            ? ScrapeVerdict.Allowed
            : ScrapeVerdict.NetworkNotTrusted;
    }

    /// <summary>The first entry that is not a CIDR network, with why; null when all are.</summary>
    public static string? NetworksProblem(IEnumerable<string> networks)
    {
        foreach (var network in networks)
        {
            // TryParse quietly masks host bits ("10.0.0.1/8" → 10.0.0.0/8): almost always a typo, so refused.
            if (!System.Net.IPNetwork.TryParse(network, out var parsed) || !parsed.BaseAddress.Equals(IPAddress.Parse(network[..network.IndexOf('/')])))
            {
                return $"Limen:Metrics:TrustedNetworks: '{network}' is not a CIDR network with zero host bits (e.g. 10.0.0.0/8, fd00::/8).";
            }
        }

        return null;
    }

    private static System.Net.IPNetwork[] ParseNetworks(IEnumerable<string> networks) => networks.Select(n => System.Net.IPNetwork.Parse(n)).ToArray();
}

/// <summary>
/// Prometheus's scrape token, checked by a scheme of its own (the JWT scheme forwards /api/metrics
/// here), so the token never reaches the JWT handler and a user's JWT is no scrape token.
/// </summary>
public sealed partial class MetricsScrapeAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> schemeOptions, ILoggerFactory loggerFactory, UrlEncoder encoder,
    IOptionsMonitor<MetricsOptions> metricsOptions)
    : AuthenticationHandler<AuthenticationSchemeOptions>(schemeOptions, loggerFactory, encoder)
{
    public const string SchemeName = "metrics-scrape";
    public const string MetricsPath = "/api/metrics";

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var options = metricsOptions.CurrentValue;
        if (!options.ScrapeTokenConfigured)
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }

        string? expected;
        try
        {
            expected = MachineCredentials.Resolve(options.ScrapeToken, options.ScrapeTokenFile);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            LogTokenFileUnreadable(Logger, options.ScrapeTokenFile, e.Message);
            expected = null;
        }

        if (expected is null || !MachineCredentials.Presents(Request.Headers.Authorization.ToString(), expected))
        {
            return Task.FromResult(AuthenticateResult.Fail("Missing or wrong scrape token."));
        }

        var identity = new ClaimsIdentity([new Claim(ClaimTypes.Name, "prometheus")], SchemeName);
        return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName)));
    }

    [LoggerMessage(EventId = 1500, Level = LogLevel.Error,
        Message = "Metrics scrape token file {File} unreadable ({Reason}): every scrape is refused until it can be read.")]
    private static partial void LogTokenFileUnreadable(ILogger logger, string? file, string reason);
}

public static class MetricsScrapeRegistration
{
    public static IServiceCollection AddMetricsScrape(this IServiceCollection services)
    {
        // Checked at start together with the rest of MetricsOptions (AddHostMetrics asks ValidateOnStart).
        services.AddSingleton<IValidateOptions<MetricsOptions>, TrustedNetworksValidation>();
        services.AddSingleton<MetricsScrapePolicy>();
        services.AddAuthentication().AddScheme<AuthenticationSchemeOptions, MetricsScrapeAuthenticationHandler>(
            MetricsScrapeAuthenticationHandler.SchemeName, configureOptions: null);
        services.ForwardFromJwt(MachineCredentials.ForPath(MetricsScrapeAuthenticationHandler.MetricsPath, MetricsScrapeAuthenticationHandler.SchemeName));
        return services;
    }

    /// <summary>Names the entry that is wrong, which a plain predicate cannot.</summary>
    private sealed class TrustedNetworksValidation : IValidateOptions<MetricsOptions>
    {
        public ValidateOptionsResult Validate(string? name, MetricsOptions options) =>
            MetricsScrapePolicy.NetworksProblem(options.TrustedNetworks) is { } problem ? ValidateOptionsResult.Fail(problem) : ValidateOptionsResult.Success;
    }
}
