using Limen.Features.Health;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Limen.Features.Metrics;

/// <summary>
/// Samples the host at start and then every Limen:Metrics:HostSampleSeconds. A failed sample (a
/// disk path that is not mounted yet) is retried and heals by itself; the gauges keep their last
/// value meanwhile, and the log says why they stopped moving.
/// </summary>
public sealed class HostMetricsService(HostSampler sampler, IOptions<MetricsOptions> options, LoopHealth loops, TimeProvider clock,
    ILogger<HostMetricsService> logger) : BackgroundLoop(loops, clock, logger)
{
    public override string Name => "host_sampler";

    protected override TimeSpan Interval => TimeSpan.FromSeconds(options.Value.HostSampleSeconds);

    protected override Task RunOnceAsync(CancellationToken cancellationToken) => sampler.SampleAsync(cancellationToken);
}

public static class HostMetricsRegistration
{
    /// <summary>The host sampler and its background service, publishing to <paramref name="gauges"/>.</summary>
    public static IServiceCollection AddHostMetrics(this IServiceCollection services, IConfiguration configuration,
        string defaultDiskPath, Func<IServiceProvider, HostMetrics> gauges)
    {
        services.AddOptions<MetricsOptions>()
            .Bind(configuration.GetSection(MetricsOptions.Section))
            .Validate(o => o.HostSampleSeconds >= 1, "Limen:Metrics:HostSampleSeconds must be 1 or more.")
            .ValidateOnStart();
        services.TryAddSingleton<LoopHealth>();
        services.AddSingleton(sp => new HostSampler(gauges(sp),
            sp.GetRequiredService<IOptions<MetricsOptions>>().Value.DiskPath ?? defaultDiskPath, sp.GetRequiredService<TimeProvider>()));
        services.AddHostedService<HostMetricsService>();
        return services;
    }
}
