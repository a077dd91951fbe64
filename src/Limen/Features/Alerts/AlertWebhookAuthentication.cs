using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using Limen.Features.Metrics;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.Extensions.Options;

namespace Limen.Features.Alerts;

/// <summary>
/// Alertmanager's bearer token, checked by a scheme of its own. The JWT scheme forwards the webhook
/// path here, so Alertmanager's token never reaches the JWT handler — which would count every
/// delivery as auth_failure_total{reason="invalid_token"} — and a user's JWT is no good on it.
/// </summary>
public sealed class AlertWebhookAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> schemeOptions, ILoggerFactory loggerFactory, UrlEncoder encoder,
    IOptionsMonitor<AlertsOptions> alertsOptions, LimenMetrics metrics)
    : AuthenticationHandler<AuthenticationSchemeOptions>(schemeOptions, loggerFactory, encoder)
{
    public const string SchemeName = "alertmanager-webhook";
    public const string WebhookPath = "/api/alerts/webhook";

    /// <summary>For JwtBearerOptions.ForwardDefaultSelector: the webhook path is this scheme's.</summary>
    public static string? ForwardSelector(HttpContext context) =>
        string.Equals(context.Request.Path.Value?.TrimEnd('/'), WebhookPath, StringComparison.OrdinalIgnoreCase) ? SchemeName : null;

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        string? expected;
        try
        {
            expected = alertsOptions.CurrentValue.ResolveToken();
        }
        catch (IOException e)
        {
            Logger.LogError("Alert webhook token file unreadable: {Reason}", e.Message);
            expected = null;
        }

        if (expected is null)
        {
            Logger.LogWarning("Alert webhook refused: no token configured (Limen:Alerts:WebhookToken or Limen:Alerts:WebhookTokenFile).");
            return Task.FromResult(Refuse("The alert webhook is not configured."));
        }

        var header = Request.Headers.Authorization.ToString();
        const string prefix = "Bearer ";
        if (!header.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
        {
            return Task.FromResult(Refuse("Missing bearer token."));
        }

        // Hashing first gives both sides one length, so the comparison's time says nothing about the token.
        var presented = SHA256.HashData(Encoding.UTF8.GetBytes(header[prefix.Length..].Trim()));
        if (!CryptographicOperations.FixedTimeEquals(presented, SHA256.HashData(Encoding.UTF8.GetBytes(expected))))
        {
            return Task.FromResult(Refuse("Wrong bearer token."));
        }

        var identity = new ClaimsIdentity([new Claim(ClaimTypes.Name, "alertmanager")], SchemeName);
        return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName)));
    }

    protected override Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.StatusCode = StatusCodes.Status401Unauthorized;
        Response.Headers.WWWAuthenticate = "Bearer realm=\"limen-alerts\"";
        return Task.CompletedTask;
    }

    private AuthenticateResult Refuse(string reason)
    {
        metrics.AuthFailures.WithLabels(AuthFailureReasons.InvalidWebhookToken).Inc();
        return AuthenticateResult.Fail(reason);
    }
}

public static class AlertsRegistration
{
    public static IServiceCollection AddAlerts(this IServiceCollection services, IConfiguration configuration)
    {
        services.Configure<AlertsOptions>(configuration.GetSection(AlertsOptions.Section));
        services.AddAuthentication().AddScheme<AuthenticationSchemeOptions, AlertWebhookAuthenticationHandler>(
            AlertWebhookAuthenticationHandler.SchemeName, configureOptions: null);
        services.PostConfigure<JwtBearerOptions>(JwtBearerDefaults.AuthenticationScheme,
            jwt => jwt.ForwardDefaultSelector = AlertWebhookAuthenticationHandler.ForwardSelector);
        return services;
    }
}
