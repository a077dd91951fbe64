using Limen.Data;
using Limen.Features.Events;
using Limen.Features.Hosts;
using Limen.Features.Vms;
using Limen.Libvirt;

namespace Limen.Features.Migration;

/// <summary>How a migration ended, once settled.</summary>
public enum MigrationEnd
{
    /// <summary>The VM runs (or is defined) on the target and its row says so.</summary>
    Moved,
    /// <summary>The VM stayed on its source host; the target holds nothing of it (or will not, once it answers).</summary>
    StayedOnSource,
    /// <summary>Neither host shows the domain: the VM is missing (its row stays).</summary>
    Lost,
    /// <summary>The source host does not answer: the VM stays migrating until a later pass can look.</summary>
    Undecided,
}

/// <summary>
/// Ends a migration from where the domain turned out to be, so the row, both hosts and both disk
/// folders agree: the one rule for a migration that finished, failed, or was cut short by a dying
/// server (<see cref="VmRecovery"/>). The domain on the target counts only when the source no longer
/// has it: libvirt resumes the source whenever a migration fails, and a source that still holds the
/// domain is the VM.
/// </summary>
public sealed class MigrationSettlement(LimenDbContext db, HostRegistry hosts, VmStateMachine states, EventOutlet events, TimeProvider clock)
{
    /// <summary>Settles <paramref name="migration"/> of <paramref name="vm"/> (which is migrating) and saves; the caller holds the VM's lock.</summary>
    public async Task<MigrationEnd> SettleAsync(Vm vm, VmMigration migration, string? error, long? downtimeMs = null)
    {
        var source = hosts.Get(migration.SourceHostId);
        var target = hosts.Get(migration.TargetHostId);
        var shared = migration.Storage == MigrationStorage.Shared;
        var onSource = await ReadAsync(source, vm.Id);
        var onTarget = await ReadAsync(target, vm.Id);
        if (onSource.Unreachable)
        {
            return MigrationEnd.Undecided;
        }

        MigrationEnd end;
        if (onSource.State is null && onTarget.State is { } moved)
        {
            vm.HostId = target.Id;
            states.Transition(db, vm, VmStates.FromDomain(moved), VmStateReason.Migrated);
            migration.Result = MigrationResults.Completed;
            migration.DowntimeMs = downtimeMs;
            events.Stage(db, new EventDraft(EventTypes.VmUpdated, vm.OwnerId, vm.Id, VmResponse.From(vm)));
            end = MigrationEnd.Moved;
        }
        else
        {
            if (onTarget.Unreachable)
            {
                // Whatever the target made of it is removed when it answers again (VmRecovery).
                migration.TargetCleanupPending = true;
            }
            else if (onTarget.State is not null)
            {
                await Task.Run(() => target.Hypervisor.Run(c => VmService.RemoveDomain(c, vm.Id)));
            }

            if (!shared)
            {
                // The copy the target was given; with shared storage this would be the VM's own disk.
                target.DeleteVmFiles(vm.Id);
            }

            states.Observe(db, vm, onSource.State, VmStateReason.MigrationFailed);
            migration.Result = MigrationResults.Failed;
            end = onSource.State is null ? MigrationEnd.Lost : MigrationEnd.StayedOnSource;
        }

        migration.Error = end == MigrationEnd.Moved ? null : error;
        migration.FinishedAt = clock.GetUtcNow();
        await db.SaveChangesAsync(CancellationToken.None);
        if (end == MigrationEnd.Moved && !shared)
        {
            // Only once the row points at the target: until then the source's disk is the VM's disk.
            source.DeleteVmFiles(vm.Id);
        }

        return end;
    }

    /// <summary>What a host shows of the domain: its state, null when it has none, or that it does not answer.</summary>
    private static async Task<(DomainState? State, bool Unreachable)> ReadAsync(RegisteredHost host, Guid vmId)
    {
        try
        {
            return (await Task.Run(() => host.Hypervisor.Run(c => VmService.ReadState(c, vmId))), false);
        }
        catch (HypervisorUnavailableException)
        {
            return (null, true);
        }
    }
}
