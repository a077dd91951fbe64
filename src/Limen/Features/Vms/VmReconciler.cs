using System.Diagnostics;
using Limen.Data;
using Limen.Features.Audit;
using Limen.Features.Hosts;
using Limen.Features.Metrics;
using Limen.Libvirt;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Limen.Features.Vms;

/// <summary>
/// Keeps the database following libvirt: at start, on every lifecycle event, and in a periodic
/// sweep (events can be missed while libvirtd restarts). A domain removed behind Limen's back
/// marks its VM missing; a domain with Limen's prefix that no row knows is reported, not touched.
/// </summary>
public sealed class VmReconciler(
    IServiceScopeFactory scopes,
    Hypervisor hypervisor,
    LocalHost localHost,
    VmLocks locks,
    VmLifecycle lifecycle,
    LimenMetrics metrics,
    IOptions<HypervisorOptions> options,
    ILogger<VmReconciler> logger) : BackgroundService
{
    private readonly SemaphoreSlim wake = new(0);
    private readonly HashSet<Guid> reportedUnknown = [];

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        hypervisor.Connected += Subscribe;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                await ReconcileOnceAsync(stoppingToken);
                await wake.WaitAsync(TimeSpan.FromSeconds(options.Value.ReconcileIntervalSeconds), stoppingToken);
                // Events come in bursts (a reboot is several); let the burst finish before looking.
                await Task.Delay(100, stoppingToken);
                while (wake.CurrentCount > 0)
                {
                    await wake.WaitAsync(stoppingToken);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            hypervisor.Connected -= Subscribe;
        }
    }

    public async Task ReconcileOnceAsync(CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            var domains = await Task.Run(() => hypervisor.Run(ListDomains), cancellationToken);
            metrics.LibvirtUp.Set(1);
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<LimenDbContext>();
            var audit = scope.ServiceProvider.GetRequiredService<AuditTrail>();
            // Every sweep compares every VM of the host, so it reads only what the comparison needs,
            // untracked; only a VM whose state moved is loaded as an entity, and saved.
            var rows = await db.Vms.AsNoTracking().Where(v => v.HostId == localHost.Id)
                .Select(v => new VmStateRow(v.Id, v.State)).ToListAsync(cancellationToken);
            var states = rows.ToDictionary(r => r.Id, r => r.State);
            foreach (var row in rows.Where(r => r.State != VmStates.Creating && ObservedState(r.Id, domains) != r.State))
            {
                // Under the VM's lock, with the row and libvirt read again: an operation may have changed
                // both since the lists were taken (and a deleted VM must not be written back).
                using var vmLock = locks.TryAcquire(row.Id);
                var vm = vmLock is null ? null : await db.Vms.FirstOrDefaultAsync(v => v.Id == row.Id, cancellationToken);
                if (vm is null || vm.State == VmStates.Creating)
                {
                    continue;
                }

                var observed = await Task.Run(() => hypervisor.Run(c => VmService.ReadState(c, vm.Id)), cancellationToken);
                await ApplyAsync(vm, observed, audit, cancellationToken);
                await db.SaveChangesAsync(cancellationToken);
                states[vm.Id] = vm.State;
            }

            ReportUnknown(domains.Keys, states);
            foreach (var state in VmStates.All)
            {
                metrics.VmsByState.WithLabels(state).Set(states.Values.Count(s => s == state));
            }
        }
        catch (HypervisorUnavailableException e)
        {
            metrics.LibvirtUp.Set(0);
            logger.LogDebug("Reconciliation skipped: {Message}", e.Message);
        }
        catch (Exception e) when (Web.ProblemExceptionHandler.IsDatabaseUnavailable(e))
        {
            logger.LogDebug("Reconciliation skipped, database unavailable: {Message}", e.GetBaseException().Message);
        }
        finally
        {
            metrics.ReconcileDuration.Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
        }
    }

    private sealed record VmStateRow(Guid Id, string State);

    /// <summary>The state a row would get from libvirt's view, without touching the row.</summary>
    private static string ObservedState(Guid id, Dictionary<Guid, DomainState> domains) =>
        domains.TryGetValue(id, out var state) ? VmStates.FromDomain(state) : VmStates.Missing;

    private async Task ApplyAsync(Vm vm, DomainState? observed, AuditTrail audit, CancellationToken cancellationToken)
    {
        var before = vm.State;
        VmService.ApplyObservedState(vm, observed);
        if (vm.State == before)
        {
            return;
        }

        vm.UpdatedAt = DateTimeOffset.UtcNow;
        if (vm.State == VmStates.Missing)
        {
            lifecycle.NotifyDeleted(vm.Id);
            logger.LogWarning("VM {VmId} ({Name}) is missing: its domain is gone from {Uri}", vm.Id, vm.Name, hypervisor.Uri);
            await audit.RecordAsync(new AuditEvent("vm.missing", AuditResults.Failure, "vm", vm.Id.ToString(), "domain_missing"), cancellationToken);
        }
        else
        {
            if (vm.State is VmStates.Stopped or VmStates.Error)
            {
                lifecycle.NotifyStopped(vm.Id);
            }

            logger.LogInformation("VM {VmId} is now {State} (was {Before})", vm.Id, vm.State, before);
        }
    }

    /// <summary>
    /// The state of every domain with Limen's prefix, in one call (virConnectGetAllDomainStats): a
    /// remote daemon answers in one round trip instead of one per domain, and a domain removed while
    /// the list is read is simply absent instead of failing the lookup of its state.
    /// </summary>
    private Dictionary<Guid, DomainState> ListDomains(LibvirtConnection connection)
    {
        var result = new Dictionary<Guid, DomainState>();
        foreach (var domain in connection.GetAllDomainStats(DomainStatsTypes.State))
        {
            if (domain.State is { } state && domain.Name.StartsWith(options.Value.DomainPrefix, StringComparison.Ordinal))
            {
                result[domain.Uuid] = state;
            }
        }

        return result;
    }

    private void ReportUnknown(IEnumerable<Guid> domains, Dictionary<Guid, string> known)
    {
        var unknown = domains.Where(id => !known.ContainsKey(id)).ToList();
        metrics.UnknownDomains.Set(unknown.Count);
        foreach (var id in unknown.Where(reportedUnknown.Add))
        {
            logger.LogWarning("Domain {Domain} on {Uri} carries Limen's prefix but no VM row; leaving it untouched", options.Value.DomainPrefix + id, hypervisor.Uri);
        }
    }

    private void Subscribe(LibvirtConnection connection)
    {
        var subscription = connection.SubscribeDomainLifecycle();
        _ = Task.Run(async () =>
        {
            using (subscription)
            {
                await foreach (var _ in subscription.Events.ReadAllAsync())
                {
                    wake.Release();
                }
            }
        });
    }

    public override void Dispose()
    {
        wake.Dispose();
        base.Dispose();
    }
}
