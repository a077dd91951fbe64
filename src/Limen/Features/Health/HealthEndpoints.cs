using Limen.Features.Cluster;
using Limen.Features.Hosts;
using Limen.Hosting;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Limen.Features.Health;

public sealed record HealthResponse(
    string Status, string Db, string Libvirt, string Virtualization, string Version, DateTimeOffset Time, long UptimeSeconds,
    string ServerId, bool Leader, IReadOnlyDictionary<string, LoopReport> Loops);

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

    /// <summary>200 only when every required part answers and no background loop is failing; 503 naming what is not otherwise.</summary>
    private static async Task<JsonHttpResult<HealthResponse>> Check(
        DependencyProbe probe, Hypervisor hypervisor, LoopHealth loops, ServerIdentity server, LeaderElection leadership, TimeProvider clock,
        CancellationToken cancellationToken)
    {
        var (dbUp, libvirtUp) = await probe.ProbeAsync(cancellationToken);
        var now = clock.GetUtcNow();
        var loopReports = loops.Snapshot();
        var allUp = dbUp && libvirtUp && !loopReports.Values.Any(l => l.Status == LoopStatuses.Failing);
        var body = new HealthResponse(allUp ? "ok" : "degraded", Connected(dbUp), Connected(libvirtUp), hypervisor.DomainType,
            VersionInfo.Version, now, (long)(now - Started).TotalSeconds, server.Id, leadership.IsLeader, loopReports);
        return TypedResults.Json(body, statusCode: allUp ? 200 : 503);
    }

    private static string Connected(bool up) => up ? "connected" : "disconnected";
}
