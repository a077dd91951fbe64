using Limen.Data;
using Limen.Features.Metrics;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace Limen.Features.Backup;

/// <summary>
/// Sets limen_backup_last_success_timestamp_seconds and
/// limen_restore_drill_last_success_timestamp_seconds from backup_runs at every scrape, so the
/// gauges follow backups and drills run by other processes (`limen backup` from a timer) without
/// delay. When the database cannot be read the last values stay: DatabaseDown reports that.
/// </summary>
public sealed class BackupMetrics(LimenMetrics metrics, IDbContextFactory<LimenDbContext> dbFactory, ILogger<BackupMetrics> logger) : IHostedService
{
    private static readonly TimeSpan QueryTimeout = TimeSpan.FromSeconds(2);

    public Task StartAsync(CancellationToken cancellationToken)
    {
        metrics.Registry.AddBeforeCollectCallback(RefreshAsync);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task RefreshAsync(CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(QueryTimeout);
        try
        {
            await using var db = await dbFactory.CreateDbContextAsync(timeout.Token);
            var connection = (NpgsqlConnection)db.Database.GetDbConnection();
            await connection.OpenAsync(timeout.Token);
            metrics.BackupLastSuccess.Set(Seconds(await BackupRunLog.LastSuccessAsync(connection, BackupRunKinds.Backup, timeout.Token)));
            metrics.RestoreDrillLastSuccess.Set(Seconds(await BackupRunLog.LastSuccessAsync(connection, BackupRunKinds.Drill, timeout.Token)));
        }
        catch (Exception e) when (e is NpgsqlException or OperationCanceledException or TimeoutException or InvalidOperationException)
        {
            logger.LogDebug("Backup metrics not refreshed: {Message}", e.GetBaseException().Message);
        }
    }

    private static double Seconds(DateTimeOffset? time) => time?.ToUnixTimeMilliseconds() / 1000.0 ?? 0;
}

public static class BackupServiceCollection
{
    public static IServiceCollection AddBackupMetrics(this IServiceCollection services) => services.AddHostedService<BackupMetrics>();
}
