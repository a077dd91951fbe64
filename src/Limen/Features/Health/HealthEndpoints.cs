using Limen.Data;
using Limen.Features.Metrics;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace Limen.Features.Health;

public sealed record HealthResponse(string Status, string Db, string Version, DateTimeOffset Time, long UptimeSeconds);

public sealed record LiveResponse(string Status);

public static class HealthEndpoints
{
    private static readonly DateTimeOffset Started = System.Diagnostics.Process.GetCurrentProcess().StartTime.ToUniversalTime();

    public static IEndpointRouteBuilder MapHealth(this IEndpointRouteBuilder routes)
    {
        var health = routes.MapGroup("/api/health").WithTags("Health").AllowAnonymous();
        health.MapGet("/", Check);
        health.MapGet("/live", () => TypedResults.Ok(new LiveResponse("ok")));
        return routes;
    }

    /// <summary>200 only when every required part answers; 503 naming what is down otherwise.</summary>
    private static async Task<JsonHttpResult<HealthResponse>> Check(
        IDbContextFactory<LimenDbContext> dbFactory, LimenMetrics metrics, TimeProvider clock, ILogger<HealthResponse> logger)
    {
        var dbUp = await ProbeDatabaseAsync(dbFactory, logger);
        metrics.DatabaseUp.Set(dbUp ? 1 : 0);
        var now = clock.GetUtcNow();
        var body = new HealthResponse(dbUp ? "ok" : "degraded", dbUp ? "connected" : "disconnected", VersionInfo.Version, now,
            (long)(now - Started).TotalSeconds);
        return TypedResults.Json(body, statusCode: dbUp ? 200 : 503);
    }

    private static async Task<bool> ProbeDatabaseAsync(IDbContextFactory<LimenDbContext> dbFactory, ILogger logger)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(3));
        try
        {
            await using var db = await dbFactory.CreateDbContextAsync(timeout.Token);
            await db.Database.ExecuteSqlRawAsync("SELECT 1", timeout.Token);
            return true;
        }
        catch (Exception e)
        {
            logger.LogWarning("Database probe failed: {Message}", e.GetBaseException().Message);
            Npgsql.NpgsqlConnection.ClearAllPools();
            return false;
        }
    }
}
