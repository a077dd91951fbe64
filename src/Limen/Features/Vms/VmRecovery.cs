using Limen.Data;
using Limen.Features.Audit;
using Limen.Features.Events;
using Limen.Features.Hosts;
using Limen.Features.Migration;
using Limen.Libvirt;
using Microsoft.EntityFrameworkCore;

namespace Limen.Features.Vms;

/// <summary>
/// Settles VM creates and deletes that were cut short — the server killed, libvirtd or PostgreSQL
/// lost half-way — from the intent their rows still carry. A `creating` VM whose domain and disk
/// both exist got through its last libvirt step and is completed; any other is rolled back. A
/// `deleting` VM is always deleted. A `migrating` VM is settled from where its domain is
/// (<see cref="MigrationSettlement"/>), and a target that was down when a migration to it failed
/// loses the half-made domain once it answers. Each outcome is one audit row (error code `interrupted`),
/// committed together with it. Runs in every reconciler pass, under each VM's lock, so it never
/// touches an operation that a request of this server is still carrying out.
/// </summary>
public sealed partial class VmRecovery(
    LimenDbContext db,
    VmLocks locks,
    HostRegistry hosts,
    VmStateMachine states,
    MigrationSettlement migrations,
    EventOutlet events,
    AuditTrail audit,
    ILogger<VmRecovery> logger)
{
    public const string Interrupted = "interrupted";

    /// <summary>Settles every pending VM of <paramref name="host"/> whose lock is free; true when anything changed.</summary>
    public async Task<bool> RecoverAsync(RegisteredHost host, CancellationToken cancellationToken)
    {
        var pending = await db.Vms.AsNoTracking()
            .Where(v => v.HostId == host.Id && (v.State == VmStates.Creating || v.State == VmStates.Deleting || v.State == VmStates.Migrating))
            .Select(v => v.Id).ToListAsync(cancellationToken);
        var changed = await CleanUpFailedArrivalsAsync(host, cancellationToken);
        foreach (var id in pending)
        {
            await using var vmLock = await locks.TryAcquireAsync(id, cancellationToken);
            if (vmLock is null)
            {
                continue; // a request of this server is on it
            }

            // Read again under the lock: a request may have finished it since the query above.
            var vm = await db.Vms.FirstOrDefaultAsync(v => v.Id == id, cancellationToken);
            if (vm is null || !VmStates.IsPending(vm.State))
            {
                continue;
            }

            try
            {
                changed |= await (vm.State switch
                {
                    VmStates.Creating => SettleCreateAsync(vm, host),
                    VmStates.Deleting => FinishDeleteAsync(vm, host),
                    _ => SettleMigrationAsync(vm),
                });
            }
            catch (LibvirtException e)
            {
                // libvirt refused a step (not unreachable: that ends the pass); the next pass tries again.
                db.ChangeTracker.Clear();
                LogRecoveryFailed(vm.Id, vm.State, e.Message);
            }
        }

        return changed;
    }

    /// <summary>A migration whose server stopped before it ended: settled from where the domain is now.</summary>
    private async Task<bool> SettleMigrationAsync(Vm vm)
    {
        var migration = await db.VmMigrations.Where(m => m.VmId == vm.Id && m.Result == MigrationResults.Running)
            .OrderByDescending(m => m.StartedAt).FirstOrDefaultAsync();
        if (migration is null)
        {
            // Migrating without a migration in progress cannot be left by Limen; treat the host's view as the truth.
            states.Observe(db, vm, await Task.Run(() => hosts.Of(vm).Hypervisor.Run(c => VmService.ReadState(c, vm.Id))), VmStateReason.MigrationFailed);
            await db.SaveChangesAsync(CancellationToken.None);
            return true;
        }

        var end = await migrations.SettleAsync(vm, migration, "The server stopped during the migration.");
        if (end == MigrationEnd.Undecided)
        {
            return false;
        }

        db.AuditLogs.Add(audit.Row(new AuditEvent("vm.migrate", end == MigrationEnd.Moved ? AuditResults.Success : AuditResults.Failure, "vm", vm.Id.ToString(), Interrupted,
            new { recovery = end == MigrationEnd.Moved ? "completed" : "rolled_back", name = vm.Name, owner_id = vm.OwnerId, migration_id = migration.Id, state = vm.State })));
        await db.SaveChangesAsync(CancellationToken.None);
        LogRecovered(vm.Id, "vm.migrate", end.ToString());
        return true;
    }

    /// <summary>
    /// Removes what failed migrations left on <paramref name="host"/> while it was down: the domain
    /// of a VM that lives on another host. True when anything was removed.
    /// </summary>
    private async Task<bool> CleanUpFailedArrivalsAsync(RegisteredHost host, CancellationToken cancellationToken)
    {
        var leftovers = await db.VmMigrations.Where(m => m.TargetHostId == host.Id && m.TargetCleanupPending).ToListAsync(cancellationToken);
        var removed = false;
        foreach (var migration in leftovers)
        {
            await using var vmLock = await locks.TryAcquireAsync(migration.VmId, cancellationToken);
            if (vmLock is null)
            {
                continue;
            }

            var livesHere = await db.Vms.AnyAsync(v => v.Id == migration.VmId && v.HostId == host.Id, cancellationToken);
            if (!livesHere)
            {
                await Task.Run(() => host.Hypervisor.Run(c => VmService.RemoveDomain(c, migration.VmId)), CancellationToken.None);
                removed = true;
            }

            migration.TargetCleanupPending = false;
            await db.SaveChangesAsync(CancellationToken.None);
        }

        return removed;
    }

    private async Task<bool> SettleCreateAsync(Vm vm, RegisteredHost host)
    {
        var observed = await Task.Run(() => host.Hypervisor.Run(c => VmService.ReadState(c, vm.Id)));
        var diskExists = File.Exists(host.DiskPath(vm.Id));
        if (observed is { } domainState && diskExists)
        {
            var state = VmStates.FromObserved(domainState);
            Record(vm, "vm.create", AuditResults.Success, "completed", new { state });
            events.Stage(db, new EventDraft(EventTypes.VmCreated, vm.OwnerId, vm.Id, VmResponse.From(vm)));
            states.Observe(db, vm, domainState, VmStateReason.Recovery);
        }
        else
        {
            host.DeleteVmFiles(vm.Id);
            await Task.Run(() => host.Hypervisor.Run(c => VmService.RemoveDomain(c, vm.Id)));
            db.Vms.Remove(vm);
            Record(vm, "vm.create", AuditResults.Failure, "rolled_back", new { domain_existed = observed is not null, disk_existed = diskExists });
        }

        await db.SaveChangesAsync(CancellationToken.None);
        return true;
    }

    private async Task<bool> FinishDeleteAsync(Vm vm, RegisteredHost host)
    {
        await Task.Run(() => host.Hypervisor.Run(c => VmService.RemoveDomain(c, vm.Id)));
        host.DeleteVmFiles(vm.Id);
        db.Vms.Remove(vm);
        Record(vm, "vm.delete", AuditResults.Success, "completed", null);
        events.Stage(db, VmService.Deleted(vm));
        await db.SaveChangesAsync(CancellationToken.None);
        return true;
    }

    private void Record(Vm vm, string action, string result, string outcome, object? detail)
    {
        db.AuditLogs.Add(audit.Row(new AuditEvent(action, result, "vm", vm.Id.ToString(), Interrupted,
            new { recovery = outcome, name = vm.Name, owner_id = vm.OwnerId, detail })));
        LogRecovered(vm.Id, action, outcome);
    }

    [LoggerMessage(EventId = 1201, Level = LogLevel.Warning, Message = "Recovered VM {VmId}: the interrupted {Action} was {Outcome}")]
    private partial void LogRecovered(Guid vmId, string action, string outcome);

    [LoggerMessage(EventId = 1202, Level = LogLevel.Warning, Message = "Recovery of VM {VmId} ({State}) failed, retrying at the next pass: {Reason}")]
    private partial void LogRecoveryFailed(Guid vmId, string state, string reason);
}
