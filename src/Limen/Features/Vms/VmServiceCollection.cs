using Limen.Features.Hosts;
using Limen.Features.Images;
using Limen.Hosting;

namespace Limen.Features.Vms;

public static class VmServiceCollection
{
    /// <summary>The hypervisor connection, images, VMs and the reconciler.</summary>
    public static IServiceCollection AddVms(this IServiceCollection services, IConfiguration configuration)
    {
        services.Configure<HypervisorOptions>(configuration.GetSection(HypervisorOptions.Section));
        services.Configure<ImageOptions>(configuration.GetSection(ImageOptions.Section));
        services.AddSingleton<Hypervisor>();
        services.AddSingleton(new KvmCheckPaths());
        services.AddHostedService<KvmDeviceCheck>();
        services.AddSingleton<LocalHost>();
        services.AddSingleton<ImageStore>();
        services.AddSingleton<VmLocks>();
        services.AddSingleton<VmLifecycle>();
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
