using Limen.Web;

namespace Limen.Features.Metrics;

public static class MetricsEndpoints
{
    public static IEndpointRouteBuilder MapMetrics(this IEndpointRouteBuilder routes)
    {
        // Not a user's endpoint: MetricsScrapePolicy decides, with Prometheus's token or the client's network.
        routes.MapGet(MetricsScrapeAuthenticationHandler.MetricsPath, Export).ExcludeFromDescription().AllowAnonymous();
        return routes;
    }

    private static async Task<IResult> Export(HttpContext context, LimenMetrics metrics, MetricsScrapePolicy policy)
    {
        switch (policy.Check(context))
        {
            case ScrapeVerdict.TokenRequired:
                context.Response.Headers.WWWAuthenticate = "Bearer realm=\"limen-metrics\"";
                return Problems.Unauthenticated("/api/metrics needs Authorization: Bearer <the scrape token> (Limen:Metrics:ScrapeToken or ScrapeTokenFile).");
            case ScrapeVerdict.NetworkNotTrusted:
                return Problems.Create(403, Problems.Forbidden, "Forbidden",
                    "Without a scrape token (Limen:Metrics:ScrapeToken), only loopback and Limen:Metrics:TrustedNetworks may scrape /api/metrics.");
        }

        context.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
        await metrics.Registry.CollectAndExportAsTextAsync(context.Response.Body, context.RequestAborted);
        return Results.Empty;
    }
}
