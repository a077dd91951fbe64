using Limen.Data;
using Limen.Features.Audit;
using Limen.Features.Events;
using Limen.Features.Hosts;
using Limen.Features.Vms;
using Limen.Libvirt;
using Microsoft.EntityFrameworkCore;

namespace Limen.Features.Snapshots;

/// <summary>
/// Settles snapshot operations that were cut short, from the state their rows still carry: a
/// `creating` snapshot is kept if libvirt has it and dropped otherwise, a `reverting` one is
/// reverted to again (the same end as one revert), a `deleting` one is deleted. Audited like
/// <see cref="VmRecovery"/>, under the VM's lock, in every reconciler pass.
/// </summary>
public sealed partial class SnapshotRecovery(
    LimenDbContext db,
    VmLocks locks,
    VmStateMachine states,
    EventOutlet events,
    AuditTrail audit,
    ILogger<SnapshotRecovery> logger)
{
    /// <summary>Settles the pending snapshots of <paramref name="host"/>'s VMs whose lock is free; true when anything changed.</summary>
    public async Task<bool> RecoverAsync(RegisteredHost host, CancellationToken cancellationToken)
    {
        var vmIds = await db.VmSnapshots.AsNoTracking()
            .Where(s => s.State != SnapshotStates.Ready && db.Vms.Any(v => v.Id == s.VmId && v.HostId == host.Id))
            .Select(s => s.VmId).Distinct().ToListAsync(cancellationToken);
        var changed = false;
        foreach (var vmId in vmIds)
        {
            await using var vmLock = await locks.TryAcquireAsync(vmId, cancellationToken);
            if (vmLock is null)
            {
                continue;
            }

            var vm = await db.Vms.FirstOrDefaultAsync(v => v.Id == vmId, cancellationToken);
            if (vm is null || VmStates.IsPending(vm.State))
            {
                continue; // the VM's own create or delete is settled first
            }

            var snapshots = await db.VmSnapshots.Where(s => s.VmId == vmId && s.State != SnapshotStates.Ready)
                .OrderBy(s => s.CreatedAt).ToListAsync(cancellationToken);
            foreach (var snapshot in snapshots)
            {
                try
                {
                    await SettleAsync(vm, snapshot, host);
                    changed = true;
                }
                catch (LibvirtException e)
                {
                    db.ChangeTracker.Clear();
                    LogRecoveryFailed(snapshot.Id, snapshot.State, e.Message);
                    break;
                }
            }
        }

        return changed;
    }

    private async Task SettleAsync(Vm vm, VmSnapshot snapshot, RegisteredHost host)
    {
        switch (snapshot.State)
        {
            case SnapshotStates.Creating:
                var taken = await Task.Run(() => host.Hypervisor.Run(c =>
                {
                    using var domain = c.LookupDomainByUuid(vm.Id);
                    using var found = domain?.LookupSnapshotByName(snapshot.LibvirtName);
                    return found is not null;
                }));
                if (taken)
                {
                    snapshot.State = SnapshotStates.Ready;
                    Record(vm, snapshot, "snapshot.create", AuditResults.Success, "completed");
                    events.Stage(db, SnapshotEvents.Of(EventTypes.SnapshotCreated, vm, snapshot));
                }
                else
                {
                    db.VmSnapshots.Remove(snapshot);
                    Record(vm, snapshot, "snapshot.create", AuditResults.Failure, "rolled_back");
                }

                break;
            case SnapshotStates.Reverting:
                try
                {
                    var reverted = await Task.Run(() => host.Hypervisor.Run(c => SnapshotService.Revert(c, vm.Id, snapshot)));
                    Record(vm, snapshot, "snapshot.revert", AuditResults.Success, "completed", new { state = reverted });
                    vm.StateReason = null;
                    states.Transition(db, vm, reverted, VmStateReason.Recovery);
                    events.Stage(db, SnapshotEvents.Of(EventTypes.SnapshotReverted, vm, snapshot));
                }
                catch (LibvirtException e)
                {
                    // Cannot be done at all (the domain or the snapshot's data is gone); the reconciler
                    // makes the row follow whatever libvirt now shows.
                    Record(vm, snapshot, "snapshot.revert", AuditResults.Failure, "failed", new { error = e.Message });
                }

                vm.UpdatedAt = DateTimeOffset.UtcNow;
                snapshot.State = SnapshotStates.Ready;
                break;
            default:
                await Task.Run(() => host.Hypervisor.Run(c => SnapshotService.DeleteFromDisk(c, vm.Id, snapshot)));
                db.VmSnapshots.Remove(snapshot);
                Record(vm, snapshot, "snapshot.delete", AuditResults.Success, "completed");
                events.Stage(db, SnapshotEvents.Of(EventTypes.SnapshotDeleted, vm, snapshot));
                break;
        }

        await db.SaveChangesAsync(CancellationToken.None);
    }

    private void Record(Vm vm, VmSnapshot snapshot, string action, string result, string outcome, object? detail = null)
    {
        db.AuditLogs.Add(audit.Row(new AuditEvent(action, result, "vm", vm.Id.ToString(), VmRecovery.Interrupted,
            new { recovery = outcome, snapshot_id = snapshot.Id, name = snapshot.Name, owner_id = vm.OwnerId, detail })));
        LogRecovered(snapshot.Id, vm.Id, action, outcome);
    }

    [LoggerMessage(EventId = 1301, Level = LogLevel.Warning, Message = "Recovered snapshot {SnapshotId} of VM {VmId}: the interrupted {Action} was {Outcome}")]
    private partial void LogRecovered(Guid snapshotId, Guid vmId, string action, string outcome);

    [LoggerMessage(EventId = 1302, Level = LogLevel.Warning, Message = "Recovery of snapshot {SnapshotId} ({State}) failed, retrying at the next pass: {Reason}")]
    private partial void LogRecoveryFailed(Guid snapshotId, string state, string reason);
}
