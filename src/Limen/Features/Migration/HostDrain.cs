using Limen.Data;
using Limen.Features.Audit;
using Limen.Features.Hosts;
using Limen.Features.Outcomes;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Limen.Features.Migration;

/// <summary>
/// Empties a host for maintenance (POST /api/admin/hosts/{id}/drain): the host goes into maintenance
/// first, so placement sends nothing new to it, then every VM on it is migrated away, a few at a time
/// (<see cref="MigrationOptions.DrainParallelism"/>), each to where placement finds room. A VM that
/// cannot move stays where it is, running as before, and the report says why — none is ever lost.
/// </summary>
public sealed partial class HostDrain(
    LimenDbContext db,
    HostRegistry hosts,
    HostAdmin hostAdmin,
    IServiceScopeFactory scopes,
    AuditTrail audit,
    IOptions<MigrationOptions> options,
    ILogger<HostDrain> logger)
{
    public async Task<Outcome<DrainReport>> DrainAsync(Guid hostId, CancellationToken cancellationToken)
    {
        var host = hosts.All.FirstOrDefault(h => h.Id == hostId);
        if (host is null)
        {
            return new NotFound("The host");
        }

        var maintenance = await hostAdmin.SetModeAsync(hostId, HostMode.Maintenance, cancellationToken);
        if (maintenance.Failure is { } refused)
        {
            return refused;
        }

        var vms = await db.Vms.AsNoTracking().Where(v => v.HostId == hostId).OrderBy(v => v.CreatedAt)
            .Select(v => new { v.Id, v.Name }).ToListAsync(cancellationToken);
        using var gate = new SemaphoreSlim(options.Value.DrainParallelism);
        var outcomes = await Task.WhenAll(vms.Select(async vm =>
        {
            await gate.WaitAsync(CancellationToken.None);
            try
            {
                // A scope per VM: each migration has its own database context, and they run side by side.
                await using var scope = scopes.CreateAsyncScope();
                var moved = await scope.ServiceProvider.GetRequiredService<MigrationService>().MigrateAsync(vm.Id, null, CancellationToken.None);
                return (vm.Id, vm.Name, Outcome: moved);
            }
            finally
            {
                gate.Release();
            }
        }));

        var report = new DrainReport(hostId, "maintenance",
            outcomes.Where(o => o.Outcome.Failure is null).Select(o => new DrainedVm(o.Id, o.Name, o.Outcome.Value.HostId)).ToList(),
            outcomes.Where(o => o.Outcome.Failure is not null).Select(o => new StayedVm(o.Id, o.Name, StateOf(o.Outcome.Failure!), Why(o.Outcome.Failure!))).ToList());
        LogDrained(host.Name, report.Moved.Count, report.Stayed.Count);
        await audit.RecordAsync(new AuditEvent("host.drain", report.Stayed.Count == 0 ? AuditResults.Success : AuditResults.Failure, "host", hostId.ToString(),
            report.Stayed.Count == 0 ? null : "vms_stayed", new { host = host.Name, moved = report.Moved, stayed = report.Stayed }), cancellationToken);
        return report;
    }

    private static string StateOf(Failure failure) => failure switch
    {
        InvalidState s => s.State,
        OperationFailed f => f.State ?? "unknown",
        _ => "unchanged",
    };

    private static string Why(Failure failure) => failure switch
    {
        InvalidState s => s.Detail,
        OperationFailed f => f.Detail,
        Conflict c => c.Detail,
        NotFound => "The VM was deleted meanwhile.",
        _ => failure.ToString(),
    };

    [LoggerMessage(EventId = 1255, Level = LogLevel.Information, Message = "Drained host {Host}: {Moved} VMs moved, {Stayed} stayed")]
    private partial void LogDrained(string host, int moved, int stayed);
}
