using Microsoft.Extensions.Options;

namespace Limen.Features.Metrics;

/// <summary>Samples the host at start and then every Limen:Metrics:HostSampleSeconds.</summary>
public sealed class HostMetricsService(HostSampler sampler, IOptions<MetricsOptions> options, TimeProvider clock,
    ILogger<HostMetricsService> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(options.Value.HostSampleSeconds), clock);
        do
        {
            try
            {
                await sampler.SampleAsync(stoppingToken);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
            {
                // Keep sampling: a disk path that appears later (a mount) heals by itself. The gauges
                // keep their last value meanwhile, and this line says why they stopped moving.
                logger.LogWarning("Host metrics sample failed (disk path {DiskPath}): {Reason}", sampler.DiskPath, e.Message);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }
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
        services.AddSingleton(sp => new HostSampler(gauges(sp),
            sp.GetRequiredService<IOptions<MetricsOptions>>().Value.DiskPath ?? defaultDiskPath, sp.GetRequiredService<TimeProvider>()));
        services.AddHostedService<HostMetricsService>();
        return services;
    }
}
