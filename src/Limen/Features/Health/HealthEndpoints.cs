using Limen.Data;
using Limen.Features.Hosts;
using Limen.Features.Metrics;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace Limen.Features.Health;

public sealed record HealthResponse(string Status, string Db, string Libvirt, string Virtualization, string Version, DateTimeOffset Time, long UptimeSeconds);

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
        IDbContextFactory<LimenDbContext> dbFactory, Hypervisor hypervisor, LimenMetrics metrics, TimeProvider clock, ILogger<HealthResponse> logger)
    {
        var libvirtProbe = Task.Run(hypervisor.Probe);
        var dbUp = await ProbeDatabaseAsync(dbFactory, logger);
        var libvirtUp = await libvirtProbe;
        metrics.DatabaseUp.Set(dbUp ? 1 : 0);
        metrics.LibvirtUp.Set(libvirtUp ? 1 : 0);
        var now = clock.GetUtcNow();
        var allUp = dbUp && libvirtUp;
        var body = new HealthResponse(allUp ? "ok" : "degraded", Connected(dbUp), Connected(libvirtUp), hypervisor.DomainType,
            VersionInfo.Version, now, (long)(now - Started).TotalSeconds);
        return TypedResults.Json(body, statusCode: allUp ? 200 : 503);
    }

    private static string Connected(bool up) => up ? "connected" : "disconnected";

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
