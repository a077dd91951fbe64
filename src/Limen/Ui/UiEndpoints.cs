namespace Limen.Ui;

/// <summary>
/// The web UI served by `limen serve` itself: Blazor static server rendering (every page is an
/// ordinary request, so authorization, the audit trail and the request id work as for the API, and
/// any replica can answer any click), and the bundled static files. Nothing is fetched from
/// another origin: the Content-Security-Policy says so to the browser.
/// </summary>
public static class UiEndpoints
{
    public static IServiceCollection AddUi(this IServiceCollection services)
    {
        services.AddRazorComponents();
        return services;
    }

    /// <summary>Only our own scripts and styles, the API and the event stream of this origin, never framed.</summary>
    public static void UseUiHeaders(this WebApplication app) => app.Use((http, next) =>
    {
        if (!http.Request.Path.StartsWithSegments("/api") && !http.Request.Path.StartsWithSegments("/vnc"))
        {
            var headers = http.Response.Headers;
            headers.ContentSecurityPolicy =
                "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self'; " +
                $"connect-src 'self' ws://{http.Request.Host} wss://{http.Request.Host}; frame-ancestors 'none'; base-uri 'self'; form-action 'self'";
            headers.XFrameOptions = "DENY";
            headers.XContentTypeOptions = "nosniff";
            headers["Referrer-Policy"] = "same-origin";
        }

        return next(http);
    });

    public static void MapUi(this WebApplication app)
    {
        app.MapStaticAssets();
        app.MapRazorComponents<App>();
    }
}
