using System.Diagnostics;
using Limen.Data;
using Limen.Features.Audit;
using Limen.Features.Cluster;
using Limen.Features.Health;
using Limen.Features.Hosts;
using Limen.Features.Metrics;
using Limen.Features.Snapshots;
using Limen.Libvirt;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Limen.Features.Vms;

/// <summary>
/// Keeps the database following libvirt: at start, on every lifecycle event, on every new libvirt
/// connection, and in a periodic sweep (events can be missed while libvirtd restarts). A domain
/// removed behind Limen's back marks its VM missing; a domain with Limen's prefix that no row knows
/// is reported, not touched. Each pass first settles operations that were cut short
/// (<see cref="VmRecovery"/>, <see cref="SnapshotRecovery"/>) — the first pass, at start, is where a
/// restarted server finishes or undoes what its predecessor left half done. A pass that fails
/// (libvirt or the database away) is retried with the loop's back-off, or at once when libvirt comes back.
/// With several servers on one database only the leader reconciles (and so recovers).
/// </summary>
public sealed partial class VmReconciler(
    IServiceScopeFactory scopes,
    Hypervisor hypervisor,
    LocalHost localHost,
    VmLocks locks,
    VmLifecycle lifecycle,
    LimenMetrics metrics,
    IOptions<HypervisorOptions> options,
    LoopHealth loops,
    LeaderElection leadership,
    TimeProvider clock,
    ILogger<VmReconciler> logger) : BackgroundLoop(loops, clock, logger, leadership)
{
    private readonly SemaphoreSlim wake = new(0);
    private readonly HashSet<Guid> reportedUnknown = [];
    private readonly Lock subscribeGate = new();
    // The connection whose lifecycle events wake this loop; another one means: subscribe again.
    private LibvirtConnection? subscribed;

    public override string Name => "vm_reconciler";

    protected override TimeSpan Interval => TimeSpan.FromSeconds(options.Value.ReconcileIntervalSeconds);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        hypervisor.Connected += OnConnected;
        try
        {
            await base.ExecuteAsync(stoppingToken);
        }
        finally
        {
            hypervisor.Connected -= OnConnected;
        }
    }

    protected override Task RunOnceAsync(CancellationToken cancellationToken) => ReconcileOnceAsync(cancellationToken);

    /// <summary>The sweep interval, the back-off after a failure, or less: an event or a new connection wakes it.</summary>
    protected override async Task WaitAsync(TimeSpan delay, CancellationToken cancellationToken)
    {
        await wake.WaitAsync(delay, cancellationToken);
        // Events come in bursts (a reboot is several); let the burst finish before looking.
        await Task.Delay(100, cancellationToken);
        while (wake.CurrentCount > 0)
        {
            await wake.WaitAsync(cancellationToken);
        }
    }

    /// <summary>One pass. Throws when libvirt or the database cannot be reached (the loop retries).</summary>
    public async Task ReconcileOnceAsync(CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            Dictionary<Guid, DomainState> domains;
            try
            {
                domains = await Task.Run(() => hypervisor.Run(ListDomains), cancellationToken);
            }
            catch (HypervisorUnavailableException)
            {
                metrics.LibvirtUp.Set(0);
                throw;
            }

            metrics.LibvirtUp.Set(1);
            // A read-only instance (the restore drill) looks at another server's VMs: never settle them.
            if (!options.Value.ReadOnly && await RecoverAsync(cancellationToken))
            {
                domains = await Task.Run(() => hypervisor.Run(ListDomains), cancellationToken);
            }

            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<LimenDbContext>();
            var audit = scope.ServiceProvider.GetRequiredService<AuditTrail>();
            // Every sweep compares every VM of the host, so it reads only what the comparison needs,
            // untracked; only a VM whose state moved is loaded as an entity, and saved.
            var rows = await db.Vms.AsNoTracking().Where(v => v.HostId == localHost.Id)
                .Select(v => new VmStateRow(v.Id, v.State)).ToListAsync(cancellationToken);
            var states = rows.ToDictionary(r => r.Id, r => r.State);
            foreach (var row in rows.Where(r => !VmStates.IsPending(r.State) && ObservedState(r.Id, domains) != r.State))
            {
                // Under the VM's lock, with the row and libvirt read again: an operation may have changed
                // both since the lists were taken (and a deleted VM must not be written back).
                await using var vmLock = await locks.TryAcquireAsync(row.Id, cancellationToken);
                var vm = vmLock is null ? null : await db.Vms.FirstOrDefaultAsync(v => v.Id == row.Id, cancellationToken);
                if (vm is null || VmStates.IsPending(vm.State))
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
        finally
        {
            metrics.ReconcileDuration.Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
        }
    }

    /// <summary>VMs first: a VM deleted there takes its snapshots with it.</summary>
    private async Task<bool> RecoverAsync(CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var vmsChanged = await scope.ServiceProvider.GetRequiredService<VmRecovery>().RecoverAsync(cancellationToken);
        var snapshotsChanged = await scope.ServiceProvider.GetRequiredService<SnapshotRecovery>().RecoverAsync(cancellationToken);
        return vmsChanged || snapshotsChanged;
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
        // Normally done when the connection opened; again here if that attempt failed.
        Subscribe(connection);
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

    // Runs inside Hypervisor.Connect, on whichever call reconnected (a request, the health probe):
    // it must not fail that call, and it wakes the loop, since events were missed while disconnected.
    private void OnConnected(LibvirtConnection connection)
    {
        try
        {
            Subscribe(connection);
        }
        catch (Exception e) when (e is LibvirtException or ObjectDisposedException)
        {
            // The connection died as soon as it opened (or was already released); the next one subscribes.
            LogSubscribeFailed(logger, hypervisor.Uri, e.Message);
        }

        wake.Release();
    }

    /// <summary>Subscribes once per connection; the subscription ends when the connection is released.</summary>
    private void Subscribe(LibvirtConnection connection)
    {
        DomainLifecycleSubscription subscription;
        lock (subscribeGate)
        {
            if (ReferenceEquals(subscribed, connection))
            {
                return;
            }

            subscription = connection.SubscribeDomainLifecycle();
            subscribed = connection;
        }

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

    [LoggerMessage(EventId = 1200, Level = LogLevel.Warning, Message = "Could not subscribe to lifecycle events of {Uri}; the next pass tries again: {Message}")]
    private static partial void LogSubscribeFailed(ILogger logger, string uri, string message);

    public override void Dispose()
    {
        wake.Dispose();
        base.Dispose();
    }
}
