using System.Security.Claims;
using System.Xml.Linq;
using Limen.Data;
using Limen.Features.Audit;
using Limen.Features.Events;
using Limen.Features.Hosts;
using Limen.Features.Metrics;
using Limen.Features.Outcomes;
using Limen.Features.Quotas;
using Limen.Features.Vms;
using Limen.Hosting;
using Limen.Libvirt;
using Microsoft.EntityFrameworkCore;

namespace Limen.Features.Snapshots;

public sealed record CreateSnapshotRequest(string Name, string? Description = null, bool IncludeMemory = false);

public sealed record SnapshotResponse(Guid Id, Guid VmId, string Name, string? Description, bool IncludeMemory, string VmState, string State, DateTimeOffset CreatedAt)
{
    public static SnapshotResponse From(VmSnapshot s) => new(s.Id, s.VmId, s.Name, s.Description, s.IncludeMemory, s.VmState, s.State, s.CreatedAt);
}

/// <summary>The <c>snapshot.*</c> events: what a client needs to find the snapshot and its VM.</summary>
public static class SnapshotEvents
{
    public static EventDraft Of(string type, Vm vm, VmSnapshot snapshot) =>
        new(type, vm.OwnerId, vm.Id, new { snapshot_id = snapshot.Id, vm_id = vm.Id, name = snapshot.Name });
}

/// <summary>
/// Internal qcow2 snapshots (disk, and for a running VM its RAM, inside the VM's own qcow2).
/// libvirt 9.0 can create, revert and delete these; external snapshots cannot be reverted before
/// libvirt 9.9. libvirt only takes an internal snapshot of a running VM together with its memory,
/// so without include_memory the memory is stored but never used: revert restores the disk and
/// leaves the VM stopped. Every operation holds the VM's lock, like its other actions, and records
/// its intent in the snapshot's row before libvirt is touched (see <see cref="SnapshotStates"/>).
/// </summary>
public sealed class SnapshotService(
    LimenDbContext db,
    VmService vms,
    VmLocks locks,
    HostRegistry hosts,
    QuotaService quotas,
    AuditTrail audit,
    VmStateMachine states,
    EventOutlet events,
    LimenMetrics metrics,
    CrashPoints crashPoints,
    TimeProvider clock)
{
    public const int MaxDescriptionLength = 1000;

    public async Task<Outcome<List<SnapshotResponse>>> ListAsync(Guid vmId, ClaimsPrincipal caller, CancellationToken cancellationToken)
    {
        if (await vms.FindAsync(vmId, caller, cancellationToken) is null)
        {
            return new NotFound("The VM");
        }

        var snapshots = await db.VmSnapshots.AsNoTracking().Where(s => s.VmId == vmId).OrderBy(s => s.CreatedAt).ToListAsync(cancellationToken);
        return snapshots.ConvertAll(SnapshotResponse.From);
    }

    public async Task<Outcome<SnapshotResponse>> GetAsync(Guid vmId, Guid snapshotId, ClaimsPrincipal caller, CancellationToken cancellationToken) =>
        await FindAsync(vmId, snapshotId, caller, cancellationToken) is ({ }, { } snapshot)
            ? SnapshotResponse.From(snapshot)
            : new NotFound("The snapshot");

    public async Task<Outcome<SnapshotResponse>> CreateAsync(
        Guid vmId, CreateSnapshotRequest request, ClaimsPrincipal caller, CancellationToken cancellationToken)
    {
        await using var vmLock = await locks.AcquireAsync(vmId, cancellationToken);
        var vm = await vms.FindAsync(vmId, caller, cancellationToken);
        if (vm is null)
        {
            return new NotFound("The VM");
        }

        if (VmRules.NameProblem(request.Name) is { } nameProblem)
        {
            return new Invalid("name", nameProblem.Replace("name must", "A snapshot name must", StringComparison.Ordinal));
        }

        if (request.Description is { Length: > MaxDescriptionLength })
        {
            return new Invalid("description", $"description must be at most {MaxDescriptionLength} characters.");
        }

        if (VmStates.IsPending(vm.State))
        {
            return Count("create", VmService.Busy(vm));
        }

        var live = vm.State is VmStates.Running or VmStates.Paused;
        if (!live && vm.State != VmStates.Stopped || (request.IncludeMemory && !live))
        {
            return Count("create", new InvalidState(
                request.IncludeMemory && vm.State == VmStates.Stopped
                    ? "A stopped VM has no memory to capture; snapshot it without include_memory."
                    : $"Cannot snapshot a VM that is {vm.State}.",
                vm.State));
        }

        var snapshot = new VmSnapshot
        {
            Id = Guid.NewGuid(), VmId = vm.Id, Name = request.Name, Description = request.Description,
            IncludeMemory = request.IncludeMemory, VmState = vm.State, State = SnapshotStates.Creating, CreatedAt = clock.GetUtcNow(),
        };
        await using (var transaction = await db.Database.BeginTransactionAsync(cancellationToken))
        {
            if (await quotas.CheckAsync(vm.OwnerId, new QuotaRequest(Snapshots: 1), cancellationToken) is { } denied)
            {
                return Count("create", denied);
            }

            db.VmSnapshots.Add(snapshot);
            try
            {
                await db.SaveChangesAsync(cancellationToken);
                await transaction.CommitAsync(cancellationToken);
            }
            catch (DbUpdateException e) when (e.IsUniqueViolation())
            {
                db.Entry(snapshot).State = EntityState.Detached;
                return Count("create", new Conflict($"This VM already has a snapshot named '{request.Name}'.", "name"));
            }
        }

        crashPoints.Reach(CrashPoints.SnapshotCreateRowInserted);
        try
        {
            var xml = SnapshotXml(snapshot, live);
            await Task.Run(() => hosts.Of(vm).Hypervisor.Run(c =>
            {
                using var domain = Domain(c, vm.Id);
                domain.CreateSnapshotXml(xml).Dispose();
            }), CancellationToken.None);
        }
        catch (LibvirtException e)
        {
            // libvirt answered no: there is no snapshot to keep. (Had libvirtd gone away instead, the
            // row stays `creating` and recovery keeps or drops it by what libvirt has once it is back.)
            var full = hosts.Of(vm).OutOfSpace(e);
            db.VmSnapshots.Remove(snapshot);
            await db.SaveChangesAsync(CancellationToken.None);
            await audit.RecordAsync(new AuditEvent("snapshot.create", AuditResults.Failure, "vm", vm.Id.ToString(), full ? "no_space" : "libvirt_error",
                new { snapshot_id = snapshot.Id, error = e.Message }), cancellationToken);
            return Count("create", full ? new InsufficientStorage("The snapshot could not be taken") : new OperationFailed("Snapshot failed", e.Message));
        }

        crashPoints.Reach(CrashPoints.SnapshotCreateTaken);
        snapshot.State = SnapshotStates.Ready;
        db.AuditLogs.Add(audit.Row(new AuditEvent("snapshot.create", AuditResults.Success, "vm", vm.Id.ToString(),
            Details: new { snapshot_id = snapshot.Id, name = snapshot.Name, include_memory = snapshot.IncludeMemory, vm_state = snapshot.VmState })));
        events.Stage(db, SnapshotEvents.Of(EventTypes.SnapshotCreated, vm, snapshot));
        await db.SaveChangesAsync(CancellationToken.None);
        metrics.SnapshotOperations.WithLabels("create", "success").Inc();
        return SnapshotResponse.From(snapshot);
    }

    /// <summary>
    /// Afterwards the VM is: running or paused as it was, when the snapshot holds its memory;
    /// stopped otherwise (its disk as it was at the snapshot).
    /// </summary>
    public async Task<Outcome<VmResponse>> RevertAsync(Guid vmId, Guid snapshotId, ClaimsPrincipal caller, CancellationToken cancellationToken)
    {
        await using var vmLock = await locks.AcquireAsync(vmId, cancellationToken);
        if (await FindAsync(vmId, snapshotId, caller, cancellationToken) is not ({ } vm, { } snapshot))
        {
            return new NotFound("The snapshot");
        }

        if (VmStates.IsPending(vm.State) || vm.State is VmStates.Missing or VmStates.Unknown)
        {
            return Count("revert", VmService.Busy(vm));
        }

        if (snapshot.State != SnapshotStates.Ready)
        {
            return Count("revert", SnapshotBusy(snapshot));
        }

        // The intent first: a revert cut short from here on is redone by recovery.
        snapshot.State = SnapshotStates.Reverting;
        await db.SaveChangesAsync(CancellationToken.None);
        crashPoints.Reach(CrashPoints.SnapshotRevertMarked);
        string reverted;
        try
        {
            reverted = await Task.Run(() => hosts.Of(vm).Hypervisor.Run(c => Revert(c, vm.Id, snapshot, () => crashPoints.Reach(CrashPoints.SnapshotRevertDiskReverted))),
                CancellationToken.None);
        }
        catch (LibvirtException e)
        {
            snapshot.State = SnapshotStates.Ready;
            await db.SaveChangesAsync(CancellationToken.None);
            await audit.RecordAsync(new AuditEvent("snapshot.revert", AuditResults.Failure, "vm", vm.Id.ToString(), "libvirt_error",
                new { snapshot_id = snapshot.Id, error = e.Message }), cancellationToken);
            return Count("revert", new OperationFailed("Revert failed", e.Message));
        }

        crashPoints.Reach(CrashPoints.SnapshotRevertDone);
        vm.StateReason = null;
        vm.UpdatedAt = clock.GetUtcNow();
        snapshot.State = SnapshotStates.Ready;
        db.AuditLogs.Add(audit.Row(new AuditEvent("snapshot.revert", AuditResults.Success, "vm", vm.Id.ToString(),
            Details: new { snapshot_id = snapshot.Id, name = snapshot.Name, state = reverted })));
        states.Transition(db, vm, reverted, VmStateReason.SnapshotRevert);
        events.Stage(db, SnapshotEvents.Of(EventTypes.SnapshotReverted, vm, snapshot));
        await db.SaveChangesAsync(CancellationToken.None);
        metrics.SnapshotOperations.WithLabels("revert", "success").Inc();
        return VmResponse.From(vm);
    }

    /// <summary>The VM's state after a revert: as it was at the snapshot when the snapshot holds its memory, else stopped.</summary>
    public static string StateAfterRevert(bool includeMemory, string vmStateAtSnapshot) =>
        includeMemory && vmStateAtSnapshot is VmStates.Running or VmStates.Paused ? vmStateAtSnapshot : VmStates.Stopped;

    /// <summary>
    /// Reverts the domain to <paramref name="snapshot"/> and returns the VM's new state. Reverting
    /// twice to the same snapshot ends the same way as once, which is what lets recovery redo it.
    /// </summary>
    /// <param name="diskReverted">Runs between the revert and the power-off of a revert that ends stopped.</param>
    internal static string Revert(LibvirtConnection connection, Guid vmId, VmSnapshot snapshot, Action? diskReverted = null)
    {
        using var domain = Domain(connection, vmId);
        using var libvirtSnapshot = domain.LookupSnapshotByName(snapshot.LibvirtName)
            ?? throw new LibvirtException("The snapshot's data is gone from the VM's disk.", LibvirtErrorCode.NoDomainSnapshot, 0, "lookup");
        if (StateAfterRevert(snapshot.IncludeMemory, snapshot.VmState) != VmStates.Stopped)
        {
            domain.RevertToSnapshot(libvirtSnapshot, snapshot.VmState == VmStates.Paused ? SnapshotRevertFlags.Paused : SnapshotRevertFlags.Running);
            return snapshot.VmState;
        }

        // Taken while running (memory stored but not wanted) or while stopped: restore the disk, end stopped.
        domain.RevertToSnapshot(libvirtSnapshot, snapshot.VmState == VmStates.Stopped ? SnapshotRevertFlags.None : SnapshotRevertFlags.Paused);
        diskReverted?.Invoke();
        if (domain.IsActive)
        {
            domain.Destroy();
        }

        return VmStates.Stopped;
    }

    /// <summary>Deletes the snapshot's data from the qcow2 (not just libvirt's metadata), then its row.</summary>
    /// <summary>Null when the snapshot is gone from the disk and the database.</summary>
    public async Task<Failure?> DeleteAsync(Guid vmId, Guid snapshotId, ClaimsPrincipal caller, CancellationToken cancellationToken)
    {
        await using var vmLock = await locks.AcquireAsync(vmId, cancellationToken);
        if (await FindAsync(vmId, snapshotId, caller, cancellationToken) is not ({ } vm, { } snapshot))
        {
            return new NotFound("The snapshot");
        }

        if (snapshot.State is not (SnapshotStates.Ready or SnapshotStates.Deleting))
        {
            return Count("delete", SnapshotBusy(snapshot));
        }

        // The intent first: a delete cut short from here on is finished by recovery.
        snapshot.State = SnapshotStates.Deleting;
        await db.SaveChangesAsync(CancellationToken.None);
        crashPoints.Reach(CrashPoints.SnapshotDeleteMarked);
        try
        {
            await Task.Run(() => hosts.Of(vm).Hypervisor.Run(c => DeleteFromDisk(c, vm.Id, snapshot)), CancellationToken.None);
        }
        catch (LibvirtException e)
        {
            snapshot.State = SnapshotStates.Ready;
            await db.SaveChangesAsync(CancellationToken.None);
            await audit.RecordAsync(new AuditEvent("snapshot.delete", AuditResults.Failure, "vm", vm.Id.ToString(), "libvirt_error",
                new { snapshot_id = snapshot.Id, error = e.Message }), cancellationToken);
            return Count("delete", new OperationFailed("Snapshot deletion failed", e.Message));
        }

        crashPoints.Reach(CrashPoints.SnapshotDeleteRemoved);
        db.VmSnapshots.Remove(snapshot);
        db.AuditLogs.Add(audit.Row(new AuditEvent("snapshot.delete", AuditResults.Success, "vm", vm.Id.ToString(),
            Details: new { snapshot_id = snapshot.Id, name = snapshot.Name })));
        events.Stage(db, SnapshotEvents.Of(EventTypes.SnapshotDeleted, vm, snapshot));
        await db.SaveChangesAsync(CancellationToken.None);
        metrics.SnapshotOperations.WithLabels("delete", "success").Inc();
        return null;
    }

    /// <summary>Deletes the snapshot's data and metadata, if libvirt still has them.</summary>
    internal static void DeleteFromDisk(LibvirtConnection connection, Guid vmId, VmSnapshot snapshot)
    {
        using var domain = connection.LookupDomainByUuid(vmId);
        using var libvirtSnapshot = domain?.LookupSnapshotByName(snapshot.LibvirtName);
        libvirtSnapshot?.Delete();
    }

    /// <summary>The VM (visible to the caller) and its snapshot; a snapshot of another VM is not found.</summary>
    private async Task<(Vm? Vm, VmSnapshot? Snapshot)> FindAsync(Guid vmId, Guid snapshotId, ClaimsPrincipal caller, CancellationToken cancellationToken)
    {
        var vm = await vms.FindAsync(vmId, caller, cancellationToken);
        var snapshot = vm is null ? null : await db.VmSnapshots.FirstOrDefaultAsync(s => s.Id == snapshotId && s.VmId == vmId, cancellationToken);
        return (vm, snapshot);
    }

    private static InvalidState SnapshotBusy(VmSnapshot snapshot) => new($"The snapshot is {snapshot.State}.", snapshot.State);

    private static LibvirtDomain Domain(LibvirtConnection connection, Guid vmId) =>
        connection.LookupDomainByUuid(vmId) ?? throw new LibvirtException("The VM's domain no longer exists.", LibvirtErrorCode.NoDomain, 0, "lookup");

    private static string SnapshotXml(VmSnapshot snapshot, bool live) =>
        new XElement("domainsnapshot",
            new XElement("name", snapshot.LibvirtName),
            new XElement("description", snapshot.Name),
            // libvirt has no internal disk-only snapshot of a running VM: a live one always stores the memory.
            new XElement("memory", new XAttribute("snapshot", live ? "internal" : "no")),
            new XElement("disks", new XElement("disk", new XAttribute("name", "vda"), new XAttribute("snapshot", "internal"))))
            .ToString();

    private Failure Count(string operation, Failure failure)
    {
        metrics.SnapshotOperations.WithLabels(operation, "failure").Inc();
        return failure;
    }
}
