using System.Security.Claims;
using System.Text.Encodings.Web;
using Limen.Features.Metrics;
using Limen.Web;
using Microsoft.AspNetCore.Authentication;
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

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        string? expected;
        try
        {
            expected = alertsOptions.CurrentValue.ResolveToken();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Logger.LogError("Alert webhook token file unreadable: {Reason}", e.Message);
            expected = null;
        }

        if (expected is null)
        {
            Logger.LogWarning("Alert webhook refused: no token configured (Limen:Alerts:WebhookToken or Limen:Alerts:WebhookTokenFile).");
            return Task.FromResult(Refuse("The alert webhook is not configured."));
        }

        if (!MachineCredentials.Presents(Request.Headers.Authorization.ToString(), expected))
        {
            return Task.FromResult(Refuse("Missing or wrong bearer token."));
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
        services.ForwardFromJwt(MachineCredentials.ForPath(AlertWebhookAuthenticationHandler.WebhookPath, AlertWebhookAuthenticationHandler.SchemeName));
        return services;
    }
}
