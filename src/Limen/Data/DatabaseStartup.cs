using Microsoft.EntityFrameworkCore;

namespace Limen.Data;

public static class DatabaseStartup
{
    /// <summary>
    /// Applies pending migrations, waiting for PostgreSQL with one clear log line per attempt
    /// (no stack traces, no crash loop) until it answers or <paramref name="cancellationToken"/> fires.
    /// </summary>
    public static async Task MigrateAsync(IServiceProvider services, CancellationToken cancellationToken)
    {
        var dbFactory = services.GetRequiredService<IDbContextFactory<LimenDbContext>>();
        var logger = services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(DatabaseStartup));
        var delay = TimeSpan.FromSeconds(1);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await using var db = await dbFactory.CreateDbContextAsync(cancellationToken);
                var pending = (await db.Database.GetPendingMigrationsAsync(cancellationToken)).ToList();
                if (pending.Count > 0)
                {
                    logger.LogInformation("Applying {Count} database migration(s): {Migrations}", pending.Count, string.Join(", ", pending));
                    await db.Database.MigrateAsync(cancellationToken);
                }

                return;
            }
            catch (Exception e) when (Web.ProblemExceptionHandler.IsDatabaseUnavailable(e) && !cancellationToken.IsCancellationRequested)
            {
                await using var db = await dbFactory.CreateDbContextAsync(cancellationToken);
                logger.LogWarning("Database {Database} is not reachable (attempt {Attempt}: {Reason}); retrying in {Delay} s",
                    DatabaseConnection.Describe(db.Database.GetConnectionString()!), attempt, e.GetBaseException().Message, delay.TotalSeconds);
                await Task.Delay(delay, cancellationToken);
                delay = TimeSpan.FromSeconds(Math.Min(delay.TotalSeconds * 2, 10));
            }
        }
    }
}
