using Limen.Data;
using Limen.Features.Hosts;
using Limen.Features.Metrics;
using Microsoft.EntityFrameworkCore;

namespace Limen.Features.Health;

/// <summary>
/// Asks PostgreSQL and libvirt whether they answer, and keeps limen_database_up and
/// limen_libvirt_up current — on every health request and every 15 s in the background, so the
/// DatabaseDown and LibvirtDown alerts see the truth even when nobody calls /api/health.
/// </summary>
public sealed class DependencyProbe(IDbContextFactory<LimenDbContext> dbFactory, Hypervisor hypervisor, LimenMetrics metrics, ILogger<DependencyProbe> logger)
    : BackgroundService
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(15);

    public async Task<(bool Database, bool Libvirt)> ProbeAsync(CancellationToken cancellationToken)
    {
        var libvirt = Task.Run(hypervisor.Probe, cancellationToken);
        var database = await ProbeDatabaseAsync(cancellationToken);
        var libvirtUp = await libvirt;
        metrics.DatabaseUp.Set(database ? 1 : 0);
        metrics.LibvirtUp.Set(libvirtUp ? 1 : 0);
        return (database, libvirtUp);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval);
        do
        {
            await ProbeAsync(stoppingToken);
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    private async Task<bool> ProbeDatabaseAsync(CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(3));
        try
        {
            await using var db = await dbFactory.CreateDbContextAsync(timeout.Token);
            await db.Database.ExecuteSqlRawAsync("SELECT 1", timeout.Token);
            return true;
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested)
        {
            logger.LogWarning("Database probe failed: {Message}", e.GetBaseException().Message);
            // Pooled connections may point at a server that is gone; start afresh next time.
            Npgsql.NpgsqlConnection.ClearAllPools();
            return false;
        }
    }
}
