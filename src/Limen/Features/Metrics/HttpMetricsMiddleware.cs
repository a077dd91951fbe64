using System.Diagnostics;

namespace Limen.Features.Metrics;

/// <summary>
/// Counts every request — including those that authentication, authorization or rate limiting
/// turn away — labelled with the route template (never the raw path, so labels stay bounded).
/// Placed after routing so the endpoint is known, before auth so rejections pass through here.
/// </summary>
public sealed class HttpMetricsMiddleware(RequestDelegate next, LimenMetrics metrics)
{
    public async Task InvokeAsync(HttpContext context)
    {
        var started = Stopwatch.GetTimestamp();
        int status;
        try
        {
            await next(context);
            status = context.Response.StatusCode;
        }
        catch (Exception e)
        {
            // The exception handler further out turns this into the response; label it the same.
            status = Web.ProblemExceptionHandler.StatusFor(e);
            Count(context, started, status);
            throw;
        }

        Count(context, started, status);
    }

    private void Count(HttpContext context, long started, int status)
    {
        var route = RouteLabel(context);
        var method = context.Request.Method;
        metrics.HttpRequests.WithLabels(method, route, status.ToString(System.Globalization.CultureInfo.InvariantCulture)).Inc();
        metrics.HttpRequestDuration.WithLabels(method, route).Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
    }

    private static string RouteLabel(HttpContext context) =>
        context.GetEndpoint() is RouteEndpoint endpoint
            ? "/" + (endpoint.RoutePattern.RawText ?? "").TrimStart('/')
            : "unmatched";
}
