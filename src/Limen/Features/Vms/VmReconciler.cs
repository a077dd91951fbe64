using System.Collections.Concurrent;
using System.Diagnostics;
using Limen.Data;
using Limen.Features.Audit;
using Limen.Features.Events;
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
/// Keeps the database following libvirt, host by host: at start, on every lifecycle event, on every
/// new libvirt connection, and in a periodic sweep (events can be missed while libvirtd restarts).
/// Each host has a loop of its own (see <see cref="HostLoop"/>), so a host that is down delays only
/// its own VMs. A domain removed behind Limen's back marks its VM missing; a domain with Limen's
/// prefix that no row knows is reported, not touched. Each pass first settles operations that were
/// cut short (<see cref="VmRecovery"/>, <see cref="SnapshotRecovery"/>) — the first pass, at start,
/// is where a restarted server finishes or undoes what its predecessor left half done. A pass that
/// fails (libvirt or the database away) is retried with the loop's back-off, or at once when libvirt
/// comes back. The host loops also publish host.up and host.down as their connections come and go.
/// With several servers on one database only the leader reconciles (and so recovers).
/// </summary>
public sealed partial class VmReconciler(
    IServiceScopeFactory scopes,
    HostRegistry hosts,
    VmLocks locks,
    LimenMetrics metrics,
    EventOutlet events,
    IOptions<HypervisorOptions> options,
    LoopHealth loops,
    LeaderElection leadership,
    TimeProvider clock,
    ILogger<VmReconciler> logger) : IHostedService, IDisposable
{
    private readonly Lock tallyGate = new();
    // Per host: the VM states and unknown domains of its last pass; the gauges are their sums.
    private readonly Dictionary<Guid, (Dictionary<Guid, string> States, int Unknown)> tallies = [];
    private readonly HashSet<Guid> reportedUnknown = [];
    // One pass per host at a time: a pass run on demand while the loop's is under way would skip the
    // VMs that pass holds and return before it has saved them (the caller then reads the row as it was).
    private readonly ConcurrentDictionary<Guid, SemaphoreSlim> passGates = new();
    // Domains lifecycle events named since their host's last pass began: a change found for one of
    // them was told by libvirt (reason libvirt.event), any other was found by the sweep (reason reconcile).
    private readonly ConcurrentDictionary<Guid, byte> eventful = new();
    // Per host; hosts added or removed at run time (the hosts API, on any server) start and stop theirs.
    private readonly Dictionary<Guid, HostLoop> running = [];
    private bool stopped;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        hosts.Added += OnHostAdded;
        hosts.Removed += OnHostRemoved;
        foreach (var host in hosts.All)
        {
            await StartLoopAsync(host, cancellationToken);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        hosts.Added -= OnHostAdded;
        hosts.Removed -= OnHostRemoved;
        List<HostLoop> loops;
        lock (tallyGate)
        {
            stopped = true;
            loops = [.. running.Values];
        }

        return Task.WhenAll(loops.Select(l => l.StopAsync(cancellationToken)));
    }

    private Task StartLoopAsync(RegisteredHost host, CancellationToken cancellationToken)
    {
        var loop = new HostLoop(this, host, TimeSpan.FromSeconds(options.Value.ReconcileIntervalSeconds), loops, leadership, clock, logger);
        lock (tallyGate)
        {
            if (stopped || !running.TryAdd(host.Id, loop))
            {
                loop.Dispose();
                return Task.CompletedTask;
            }
        }

        return loop.StartAsync(cancellationToken);
    }

    private void OnHostAdded(RegisteredHost host) => _ = StartLoopAsync(host, CancellationToken.None);

    private void OnHostRemoved(RegisteredHost host)
    {
        HostLoop? loop;
        lock (tallyGate)
        {
            running.Remove(host.Id, out loop);
            tallies.Remove(host.Id);
            foreach (var state in VmStates.All)
            {
                metrics.HostVms.RemoveLabelled(host.Name, state);
            }
        }

        if (loop is not null)
        {
            _ = Task.Run(async () =>
            {
                await loop.StopAsync(CancellationToken.None);
                loops.Forget(loop.Name);
                loop.Dispose();
            });
        }
    }

    /// <summary>One pass over every host; throws the first host's failure once all were tried.</summary>
    public async Task ReconcileOnceAsync(CancellationToken cancellationToken)
    {
        Exception? failure = null;
        foreach (var host in hosts.All)
        {
            try
            {
                await ReconcileAsync(host, cancellationToken);
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested)
            {
                failure ??= e;
            }
        }

        if (failure is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        }
    }

    /// <summary>One pass over one host, after any pass of it under way. Throws when its libvirt or the database cannot be reached (the loop retries).</summary>
    public async Task ReconcileAsync(RegisteredHost host, CancellationToken cancellationToken)
    {
        var gate = passGates.GetOrAdd(host.Id, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync(cancellationToken);
        try
        {
            await PassAsync(host, cancellationToken);
        }
        finally
        {
            gate.Release();
        }
    }

    private async Task PassAsync(RegisteredHost host, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        // Taken before libvirt is read, so the domains read reflect every event taken here (VM ids
        // are unique across hosts, so another host's pass takes only its own).
        var named = eventful.Keys.Where(id => eventful.TryRemove(id, out _)).ToHashSet();
        var hypervisor = host.Hypervisor;
        try
        {
            Dictionary<Guid, DomainState> domains;
            try
            {
                domains = await Task.Run(() => hypervisor.Run(ListDomains), cancellationToken);
            }
            catch (HypervisorUnavailableException e)
            {
                if (host.IsLocal)
                {
                    metrics.LibvirtUp.Set(0);
                }

                // A read-only instance looks at another server's VMs: it never marks them.
                if (!options.Value.ReadOnly)
                {
                    await MarkUnknownAsync(host, e.Message, cancellationToken);
                }

                throw;
            }

            if (host.IsLocal)
            {
                metrics.LibvirtUp.Set(1);
            }

            // A read-only instance (the restore drill) looks at another server's VMs: never settle them.
            if (!options.Value.ReadOnly && await RecoverAsync(host, cancellationToken))
            {
                domains = await Task.Run(() => hypervisor.Run(ListDomains), cancellationToken);
            }

            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<LimenDbContext>();
            var audit = scope.ServiceProvider.GetRequiredService<AuditTrail>();
            var machine = scope.ServiceProvider.GetRequiredService<VmStateMachine>();
            // Every sweep compares every VM of the host, so it reads only what the comparison needs,
            // untracked; only a VM whose state moved is loaded as an entity, and saved.
            var rows = await db.Vms.AsNoTracking().Where(v => v.HostId == host.Id)
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
                await ApplyAsync(db, machine, vm, observed, named.Contains(vm.Id) ? VmStateReason.LibvirtEvent : VmStateReason.Reconcile, host, audit, cancellationToken);
                await db.SaveChangesAsync(cancellationToken);
                states[vm.Id] = vm.State;
            }

            Tally(host, states, domains.Keys);
        }
        finally
        {
            metrics.ReconcileDuration.Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
        }
    }

    /// <summary>
    /// The host does not answer: each of its settled VMs is unknown (the state reason says why) until
    /// a pass reads libvirt again. Never deleted, never recreated elsewhere; VMs held by an operation
    /// are left to it (it meets the same outage and answers 503).
    /// </summary>
    private async Task MarkUnknownAsync(RegisteredHost host, string reason, CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<LimenDbContext>();
        var machine = scope.ServiceProvider.GetRequiredService<VmStateMachine>();
        var rows = await db.Vms.AsNoTracking().Where(v => v.HostId == host.Id)
            .Select(v => new VmStateRow(v.Id, v.State)).ToListAsync(cancellationToken);
        var states = rows.ToDictionary(r => r.Id, r => r.State);
        var why = $"The host {host.Name} does not answer: {reason}";
        foreach (var row in rows.Where(r => !VmStates.IsPending(r.State) && r.State != VmStates.Unknown))
        {
            await using var vmLock = await locks.TryAcquireAsync(row.Id, cancellationToken);
            var vm = vmLock is null ? null : await db.Vms.FirstOrDefaultAsync(v => v.Id == row.Id, cancellationToken);
            if (vm is null || VmStates.IsPending(vm.State) || vm.State == VmStates.Unknown)
            {
                continue;
            }

            machine.Transition(db, vm, VmStates.Unknown, VmStateReason.HostDown, why);
            await db.SaveChangesAsync(cancellationToken);
            states[vm.Id] = vm.State;
            LogUnknown(logger, vm.Id, host.Name, reason);
        }

        // Its domains cannot be read: none is counted as unknown to the database.
        Tally(host, states, []);
    }

    /// <summary>VMs first: a VM deleted there takes its snapshots with it.</summary>
    private async Task<bool> RecoverAsync(RegisteredHost host, CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var vmsChanged = await scope.ServiceProvider.GetRequiredService<VmRecovery>().RecoverAsync(host, cancellationToken);
        var snapshotsChanged = await scope.ServiceProvider.GetRequiredService<SnapshotRecovery>().RecoverAsync(host, cancellationToken);
        return vmsChanged || snapshotsChanged;
    }

    private sealed record VmStateRow(Guid Id, string State);

    /// <summary>The state a row would get from libvirt's view, without touching the row.</summary>
    private static string ObservedState(Guid id, Dictionary<Guid, DomainState> domains) =>
        VmStates.FromObserved(domains.TryGetValue(id, out var state) ? state : null);

    private async Task ApplyAsync(LimenDbContext db, VmStateMachine machine, Vm vm, DomainState? observed, VmStateReason reason,
        RegisteredHost host, AuditTrail audit, CancellationToken cancellationToken)
    {
        var before = vm.State;
        if (!machine.Observe(db, vm, observed, reason))
        {
            return;
        }

        if (vm.State == VmStates.Missing)
        {
            logger.LogWarning("VM {VmId} ({Name}) is missing: its domain is gone from {Uri}", vm.Id, vm.Name, host.Uri);
            await audit.RecordAsync(new AuditEvent("vm.missing", AuditResults.Failure, "vm", vm.Id.ToString(), "domain_missing"), cancellationToken);
        }
        else
        {
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

    /// <summary>Keeps this host's counts and sets the gauges to the sums over all hosts; logs each unknown domain once.</summary>
    private void Tally(RegisteredHost host, Dictionary<Guid, string> states, IEnumerable<Guid> domains)
    {
        var unknown = domains.Where(id => !states.ContainsKey(id)).ToList();
        lock (tallyGate)
        {
            tallies[host.Id] = (states, unknown.Count);
            metrics.UnknownDomains.Set(tallies.Values.Sum(t => t.Unknown));
            foreach (var state in VmStates.All)
            {
                metrics.VmsByState.WithLabels(state).Set(tallies.Values.Sum(t => t.States.Values.Count(s => s == state)));
                metrics.HostVms.WithLabels(host.Name, state).Set(states.Values.Count(s => s == state));
            }

            foreach (var id in unknown.Where(reportedUnknown.Add))
            {
                logger.LogWarning("Domain {Domain} on {Uri} carries Limen's prefix but no VM row; leaving it untouched", options.Value.DomainPrefix + id, host.Uri);
            }
        }
    }

    /// <summary>Publishes host.up or host.down; a database that is away loses the event, never the loop.</summary>
    private async Task PublishAsync(RegisteredHost host, string type, string reason)
    {
        try
        {
            await events.PublishAsync(new EventDraft(type, null, null, new { host_id = host.Id, name = host.Name, reason }), CancellationToken.None);
        }
        catch (Exception e) when (e is DbUpdateException or Npgsql.NpgsqlException or InvalidOperationException)
        {
            LogHostEventLost(logger, type, host.Name, e.GetBaseException().Message);
        }
    }

    public void Dispose()
    {
        foreach (var loop in running.Values)
        {
            loop.Dispose();
        }

        foreach (var gate in passGates.Values)
        {
            gate.Dispose();
        }
    }

    [LoggerMessage(EventId = 1104, Level = LogLevel.Warning, Message = "Could not record {Type} for host {Host}: {Message}")]
    private static partial void LogHostEventLost(ILogger logger, string type, string host, string message);

    [LoggerMessage(EventId = 1105, Level = LogLevel.Warning, Message = "VM {VmId} is unknown: its host {Host} does not answer ({Reason})")]
    private static partial void LogUnknown(ILogger logger, Guid vmId, string host, string reason);

    /// <summary>
    /// One host's loop: passes on its interval, and sooner when its hypervisor signals — a lifecycle
    /// event or a new connection (events were missed while disconnected) wakes it.
    /// </summary>
    private sealed class HostLoop(VmReconciler owner, RegisteredHost host, TimeSpan interval, LoopHealth loops, LeaderElection leadership, TimeProvider clock, ILogger logger)
        : BackgroundLoop(loops, clock, logger, leadership)
    {
        private readonly SemaphoreSlim wake = new(0);

        // The local host keeps the name health has always shown; the others carry theirs.
        public override string Name => host.IsLocal ? "vm_reconciler" : $"vm_reconciler.{host.Name}";

        protected override TimeSpan Interval => interval;

        protected override async Task ExecuteAsync(CancellationToken stoppingToken)
        {
            var signals = Task.Run(() => FollowAsync(stoppingToken), CancellationToken.None);
            try
            {
                await base.ExecuteAsync(stoppingToken);
            }
            finally
            {
                await signals;
            }
        }

        protected override Task RunOnceAsync(CancellationToken cancellationToken) => owner.ReconcileAsync(host, cancellationToken);

        /// <summary>The sweep interval, the back-off after a failure, or less: a signal wakes it.</summary>
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

        private async Task FollowAsync(CancellationToken stoppingToken)
        {
            // Ups and downs are published in order, without holding up the wake-ups behind a slow database.
            var published = Task.CompletedTask;
            try
            {
                await foreach (var signal in host.Hypervisor.Signals.ReadAllAsync(stoppingToken))
                {
                    switch (signal)
                    {
                        case HostUp:
                            wake.Release();
                            published = Then(published, EventTypes.HostUp, "connected");
                            break;
                        case HostDown down:
                            // A pass now finds the host down and marks its VMs unknown.
                            wake.Release();
                            published = Then(published, EventTypes.HostDown, down.Reason);
                            break;
                        case DomainChanged changed:
                            owner.eventful[changed.Event.Uuid] = 0;
                            wake.Release();
                            break;
                    }
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                // The server is stopping.
            }

            await published;
        }

        private async Task Then(Task previous, string type, string reason)
        {
            await previous;
            await owner.PublishAsync(host, type, reason);
        }

        public override void Dispose()
        {
            wake.Dispose();
            base.Dispose();
        }
    }
}
