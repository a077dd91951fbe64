using Limen.Features.Hosts;
using Limen.Features.Images;
using Limen.Hosting;
using Microsoft.Extensions.Options;

namespace Limen.Features.Vms;

public static class VmServiceCollection
{
    /// <summary>The host registry (a libvirt connection per host), placement, the hosts API, images, VMs and the reconciler.</summary>
    public static IServiceCollection AddVms(this IServiceCollection services, IConfiguration configuration)
    {
        services.Configure<HypervisorOptions>(configuration.GetSection(HypervisorOptions.Section));
        services.Configure<ImageOptions>(configuration.GetSection(ImageOptions.Section));
        services.AddOptions<HostListOptions>()
            .Bind(configuration.GetSection(HostListOptions.Section))
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<HostListOptions>, HostListValidation>();
        services.AddSingleton<HostRegistry>();
        services.AddOptions<PlacementOptions>()
            .Bind(configuration.GetSection(PlacementOptions.Section))
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<PlacementOptions>, PlacementOptionsValidation>();
        services.AddSingleton<HostPlacement>();
        services.AddScoped<HostAdmin>();
        services.AddSingleton<Events.IEventConsumer, HostEventConsumer>();
        services.AddSingleton(new KvmCheckPaths());
        services.AddHostedService<KvmDeviceCheck>();
        services.AddSingleton<ImageStore>();
        services.AddScoped<ImageCatalog>();
        services.AddSingleton<VmLocks>();
        services.AddSingleton<VmStateMachine>();
        services.AddSingleton<VmStatsSampler>();
        services.AddScoped<VmService>();
        services.Configure<Quotas.QuotaOptions>(configuration.GetSection(Quotas.QuotaOptions.Section));
        services.AddScoped<Quotas.QuotaService>();
        services.AddScoped<Snapshots.SnapshotService>();
        services.AddScoped<VmRecovery>();
        services.AddScoped<Snapshots.SnapshotRecovery>();
        services.AddCrashPoints(configuration);
        services.AddSingleton<VmReconciler>();
        services.AddHostedService(sp => sp.GetRequiredService<VmReconciler>());
        return services;
    }
}
