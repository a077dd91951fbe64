using Limen.Features.Cluster;
using Limen.Features.Hosts;
using Limen.Hosting;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Limen.Features.Health;

public sealed record HealthResponse(
    string Status, string Db, string Libvirt, string Virtualization, string Version, DateTimeOffset Time, long UptimeSeconds,
    string ServerId, bool Leader, IReadOnlyDictionary<string, LoopReport> Loops, IReadOnlyList<HostHealth> Hosts);

/// <summary>One libvirt host: the local one is also <see cref="HealthResponse.Libvirt"/>.</summary>
public sealed record HostHealth(Guid Id, string Name, bool Local, string Libvirt, string Virtualization);

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

    /// <summary>
    /// 200 only when every required part answers and no background loop is failing; 503 naming what
    /// is not otherwise. Required are the database and the local host; another host that is down
    /// only shows as disconnected in hosts (its VMs are unavailable, the server and other hosts' VMs are not).
    /// </summary>
    private static async Task<JsonHttpResult<HealthResponse>> Check(
        DependencyProbe probe, LoopHealth loops, ServerIdentity server, LeaderElection leadership, TimeProvider clock,
        CancellationToken cancellationToken)
    {
        var (dbUp, hosts) = await probe.ProbeAsync(cancellationToken);
        var local = hosts[0];
        var libvirtUp = local.Up;
        var now = clock.GetUtcNow();
        var loopReports = loops.Snapshot();
        var allUp = dbUp && libvirtUp && !loopReports.Values.Any(l => l.Status == LoopStatuses.Failing);
        var body = new HealthResponse(allUp ? "ok" : "degraded", Connected(dbUp), Connected(libvirtUp), local.Host.Hypervisor.DomainType,
            VersionInfo.Version, now, (long)(now - Started).TotalSeconds, server.Id, leadership.IsLeader, loopReports,
            hosts.Select(h => new HostHealth(h.Host.Id, h.Host.Name, h.Host.IsLocal, Connected(h.Up), h.Host.Hypervisor.DomainType)).ToList());
        return TypedResults.Json(body, statusCode: allUp ? 200 : 503);
    }

    private static string Connected(bool up) => up ? "connected" : "disconnected";
}
