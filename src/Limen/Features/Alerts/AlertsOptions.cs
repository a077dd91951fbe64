namespace Limen.Features.Alerts;

/// <summary>Settings under "Limen:Alerts" (env: Limen__Alerts__Name).</summary>
public sealed class AlertsOptions
{
    public const string Section = "Limen:Alerts";

    /// <summary>The bearer token Alertmanager sends (its credentials_file holds the same string).</summary>
    public string? WebhookToken { get; set; }

    /// <summary>A file holding the token instead; read on every call, so rotating it needs no restart.</summary>
    public string? WebhookTokenFile { get; set; }

    /// <summary>The configured token, or null when the webhook is not configured (then every call is refused).</summary>
    public string? ResolveToken() => Web.MachineCredentials.Resolve(WebhookToken, WebhookTokenFile);
}
