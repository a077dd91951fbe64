using Limen.Hosting;
using Limen.Web;
using Prometheus;

namespace Limen.Features.Metrics;

/// <summary>`limen agent`'s answer at /metrics.json: the fields (and units: bytes, percent) of the original's Rust agent.</summary>
public sealed record AgentMetricsResponse(double CpuUsage, long TotalMemory, long UsedMemory, long FreeMemory, int CpuCores);

public sealed record AgentHealthResponse(string Status, long UptimeSeconds);

/// <summary>
/// `limen agent`: the per-host health and metrics endpoint (the original's Rust agent on :9000).
/// No database, no authentication — it binds to loopback by default and exposes only host totals.
/// </summary>
public static class AgentServer
{
    public const string DefaultUrls = "http://127.0.0.1:9000";

    /// <param name="urls">Listen URLs (--urls). Not read from LIMEN_URLS, which belongs to `limen serve` on the same host.</param>
    /// <param name="overrides">Configuration that wins over every other source (tests).</param>
    public static WebApplication Build(string urls, IDictionary<string, string?> overrides)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.Configuration.AddInMemoryCollection(overrides);
        builder.WebHost.UseUrls(urls);
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.AddServerHeader = false);
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(console => console.SingleLine = true);

        var registry = Prometheus.Metrics.NewCustomRegistry();
        var host = new HostMetrics(Prometheus.Metrics.WithCustomRegistry(registry));
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddHostMetrics(builder.Configuration, "/", _ => host);
        builder.Services.AddProblemDetails(problems => problems.CustomizeProblemDetails = Problems.Customize);
        builder.Services.ConfigureHttpJsonOptions(json => LimenServer.ConfigureJson(json.SerializerOptions));

        var app = builder.Build();
        app.UseRequestIdHeader();
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        var started = TimeProvider.System.GetTimestamp();
        app.MapGet("/health", (TimeProvider clock) =>
            TypedResults.Ok(new AgentHealthResponse("ok", (long)clock.GetElapsedTime(started).TotalSeconds)));
        app.MapGet("/metrics", async (HttpContext context) =>
        {
            context.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
            await registry.CollectAndExportAsTextAsync(context.Response.Body, context.RequestAborted);
        });
        app.MapGet("/metrics.json", (HostSampler sampler) => sampler.Latest is { } sample
            ? Results.Ok(new AgentMetricsResponse(sample.CpuUsagePercent, sample.Memory.TotalBytes, sample.Memory.UsedBytes,
                sample.Memory.FreeBytes, sample.CpuCores))
            : Problems.Create(503, Problems.NotReady, "No sample yet",
                $"The first host sample is taken within {HostSampler.FirstCpuWindow.TotalSeconds:0} s of start; try again."));
        return app;
    }
}
