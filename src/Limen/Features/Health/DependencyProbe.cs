using Limen.Data;
using Limen.Features.Hosts;
using Limen.Features.Metrics;
using Microsoft.EntityFrameworkCore;

namespace Limen.Features.Health;

/// <summary>Whether one host's libvirt answered the probe.</summary>
public sealed record HostProbe(RegisteredHost Host, bool Up);

/// <summary>
/// Asks PostgreSQL and every host's libvirt whether they answer, and keeps limen_database_up and
/// limen_libvirt_up (the local host's) current — on every health request and every 15 s in the background, so the
/// DatabaseDown and LibvirtDown alerts see the truth even when nobody calls /api/health.
/// </summary>
public sealed partial class DependencyProbe(
    IDbContextFactory<LimenDbContext> dbFactory, HostRegistry hosts, LimenMetrics metrics, LoopHealth loops, TimeProvider clock,
    ILogger<DependencyProbe> logger)
    : BackgroundLoop(loops, clock, logger)
{
    // 1 = up, 0 = down, -1 = not probed yet: the log says when the database goes and comes back,
    // not on every probe (each health request probes).
    private int databaseState = -1;

    public override string Name => "dependency_probe";

    protected override TimeSpan Interval => TimeSpan.FromSeconds(15);

    protected override Task RunOnceAsync(CancellationToken cancellationToken) => ProbeAsync(cancellationToken);

    /// <returns>Whether the database answers, and each host in the registry's order (the local host first).</returns>
    public async Task<(bool Database, IReadOnlyList<HostProbe> Hosts)> ProbeAsync(CancellationToken cancellationToken)
    {
        // In parallel: a host that is slow to refuse must not delay the others' answers.
        var libvirt = hosts.All.Select(h => Task.Run(() => new HostProbe(h, h.Hypervisor.Probe()), cancellationToken)).ToList();
        var database = await ProbeDatabaseAsync(cancellationToken);
        var probes = await Task.WhenAll(libvirt);
        metrics.DatabaseUp.Set(database ? 1 : 0);
        metrics.LibvirtUp.Set(probes[0].Up ? 1 : 0);
        foreach (var probe in probes)
        {
            metrics.HostLibvirtUp.WithLabels(probe.Host.Name).Set(probe.Up ? 1 : 0);
        }

        return (database, probes);
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
