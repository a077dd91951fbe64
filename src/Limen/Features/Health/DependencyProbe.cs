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
public sealed partial class DependencyProbe(
    IDbContextFactory<LimenDbContext> dbFactory, Hypervisor hypervisor, LimenMetrics metrics, LoopHealth loops, TimeProvider clock,
    ILogger<DependencyProbe> logger)
    : BackgroundLoop(loops, clock, logger)
{
    // 1 = up, 0 = down, -1 = not probed yet: the log says when the database goes and comes back,
    // not on every probe (each health request probes).
    private int databaseState = -1;

    public override string Name => "dependency_probe";

    protected override TimeSpan Interval => TimeSpan.FromSeconds(15);

    protected override Task RunOnceAsync(CancellationToken cancellationToken) => ProbeAsync(cancellationToken);

    public async Task<(bool Database, bool Libvirt)> ProbeAsync(CancellationToken cancellationToken)
    {
        var libvirt = Task.Run(hypervisor.Probe, cancellationToken);
        var database = await ProbeDatabaseAsync(cancellationToken);
        var libvirtUp = await libvirt;
        metrics.DatabaseUp.Set(database ? 1 : 0);
        metrics.LibvirtUp.Set(libvirtUp ? 1 : 0);
        return (database, libvirtUp);
    }

    private async Task<bool> ProbeDatabaseAsync(CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(3));
        try
        {
            await using var db = await dbFactory.CreateDbContextAsync(timeout.Token);
            await db.Database.ExecuteSqlRawAsync("SELECT 1", timeout.Token);
            if (Interlocked.Exchange(ref databaseState, 1) == 0)
            {
                LogDatabaseBack(logger);
            }

            return true;
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested)
        {
            if (Interlocked.Exchange(ref databaseState, 0) != 0)
            {
                LogDatabaseDown(logger, e.GetBaseException().Message);
            }

            // Pooled connections may point at a server that is gone; start afresh next time.
            Npgsql.NpgsqlConnection.ClearAllPools();
            return false;
        }
    }

    [LoggerMessage(EventId = 1010, Level = LogLevel.Warning, Message = "Database probe failed: {Message}")]
    private static partial void LogDatabaseDown(ILogger logger, string message);

    [LoggerMessage(EventId = 1011, Level = LogLevel.Information, Message = "Database probe succeeded again")]
    private static partial void LogDatabaseBack(ILogger logger);
}
