using System.Security.Claims;
using Limen.Data;
using Limen.Features.Audit;
using Limen.Features.Events;
using Limen.Features.Hosts;
using Limen.Features.Images;
using Limen.Features.Outcomes;
using Limen.Features.Quotas;
using Limen.Hosting;
using Limen.Libvirt;
using Limen.Web;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Limen.Features.Vms;

/// <summary>
/// Creates, changes and removes VMs so that the database row, the libvirt domain and the disk file
/// always agree: every step that fails undoes the steps before it.
/// </summary>
public sealed partial class VmService(
    LimenDbContext db,
    HostRegistry hosts,
    HostPlacement placement,
    VmLocks locks,
    QuotaService quotas,
    ImageStore images,
    AuditTrail audit,
    VmStateMachine states,
    EventOutlet events,
    IOptions<HypervisorOptions> options,
    CrashPoints crashPoints,
    TimeProvider clock,
    ILogger<VmService> logger)
{
    /// <summary>The unique index on (owner_id, name): which of the VM's unique indexes a create broke.</summary>
    private const string NameIndex = "ix_vms_owner_id_name";

    /// <summary>The advisory-lock class of anti-affinity groups (the leader holds 19533/…, events take 19533/1).</summary>
    private const int AntiAffinityLockClass = 19534;

    public string DomainName(Guid vmId) => options.Value.DomainPrefix + vmId;

    /// <summary>The VM if the caller may see it (owner or admin); others' VMs are indistinguishable from missing ones.</summary>
    public Task<Vm?> FindAsync(Guid id, ClaimsPrincipal caller, CancellationToken cancellationToken)
    {
        var query = db.Vms.Where(v => v.Id == id);
        if (!caller.IsAdmin())
        {
            var userId = caller.GetUserId();
            query = query.Where(v => v.OwnerId == userId);
        }

        return query.FirstOrDefaultAsync(cancellationToken);
    }

    public async Task<Outcome<VmResponse>> CreateAsync(CreateVmRequest request, ClaimsPrincipal caller, CancellationToken cancellationToken)
    {
        var image = await db.Images.AsNoTracking().FirstOrDefaultAsync(i => i.Id == request.ImageId, cancellationToken);
        Failure? problem = VmRules.NameProblem(request.Name) is { } n ? new Invalid("name", n)
            : VmRules.AntiAffinityGroupProblem(request.AntiAffinityGroup) is { } g ? new Invalid("anti_affinity_group", g)
            : request.Vcpus < 1 ? new Invalid("vcpus", VmRules.VcpusProblem(request.Vcpus, 1)!)
            : request.MemoryMb < VmRules.MinMemoryMb ? new Invalid("memory_mb", VmRules.MemoryProblem(request.MemoryMb, VmRules.MinMemoryMb)!)
            : image is null ? new Invalid("image_id", "No such image.")
            : VmRules.DiskProblem(request.DiskGb, image.Kind == ImageKinds.Disk ? image.VirtualSizeBytes : 0) is { } d ? new Invalid("disk_gb", d)
            : null;
        RegisteredHost? placed = null;
        PlacementDecision? decision = null;
        if (problem is null)
        {
            (decision, placed, var node) = await placement.PlaceAsync(db, caller.GetUserId(), request.AntiAffinityGroup,
                new VmDemand(request.Vcpus, request.MemoryMb, request.DiskGb), cancellationToken);
            problem = placed is null ? PlacementProblem(decision, request)
                // The chosen host's numbers: no VM larger than the host it runs on.
                : VmRules.VcpusProblem(request.Vcpus, node!.Cpus) is { } c ? new Invalid("vcpus", c)
                : VmRules.MemoryProblem(request.MemoryMb, (long)(node.MemoryKiB / 1024)) is { } m ? new Invalid("memory_mb", m)
                : null;
        }

        if (problem is not null)
        {
            var code = problem switch
            {
                InsufficientStorage => "no_space",
                InsufficientCapacity => "no_capacity",
                Conflict => "anti_affinity",
                _ => "validation",
            };
            await audit.RecordAsync(new AuditEvent("vm.create", AuditResults.Failure, "vm", null, code,
                new { name = request.Name, reason = problem is Invalid i ? i.Detail : decision?.Reason }), cancellationToken);
            return problem;
        }

        // No problem means placement chose a host.
        var host = placed!;
        var now = clock.GetUtcNow();
        var isInstall = image!.Kind == ImageKinds.Iso;
        var vm = new Vm
        {
            Id = Guid.NewGuid(),
            Name = request.Name,
            OwnerId = caller.GetUserId(),
            HostId = host.Id,
            ImageId = image.Id,
            CdromImageId = isInstall ? image.Id : null,
            BootOrder = isInstall ? "cdrom,hd" : "hd",
            Vcpus = request.Vcpus,
            MemoryMb = request.MemoryMb,
            DiskGb = request.DiskGb,
            State = VmStates.Creating,
            MacAddress = await UnusedMacAddressAsync(cancellationToken),
            AntiAffinityGroup = request.AntiAffinityGroup,
            PlacementReason = decision!.Reason,
            CreatedAt = now,
            UpdatedAt = now,
        };
        // Taken before the row exists: recovery treats a `creating` row whose lock is free as left over.
        await using var vmLock = await locks.AcquireAsync(vm.Id, cancellationToken);
        // The quota check and the row that reserves the resources commit together.
        await using (var transaction = await db.Database.BeginTransactionAsync(cancellationToken))
        {
            if (await quotas.CheckAsync(vm.OwnerId, new QuotaRequest(1, vm.Vcpus, vm.MemoryMb, vm.DiskGb), cancellationToken) is { } denied)
            {
                return denied;
            }

            if (request.Start && await quotas.CheckStartAsync(vm.OwnerId, vm.Vcpus, vm.MemoryMb, cancellationToken) is { } full)
            {
                return full;
            }

            if (vm.AntiAffinityGroup is { } group && await GroupTakenAsync(vm, group, host, cancellationToken) is { } taken)
            {
                await audit.RecordAsync(new AuditEvent("vm.create", AuditResults.Failure, "vm", null, "anti_affinity",
                    new { name = request.Name, group }), cancellationToken);
                return taken;
            }

            db.Vms.Add(vm);
            try
            {
                await db.SaveChangesAsync(cancellationToken);
                await transaction.CommitAsync(cancellationToken);
            }
            catch (DbUpdateException e) when (e.IsUniqueViolation())
            {
                db.Entry(vm).State = EntityState.Detached;
                await transaction.RollbackAsync(CancellationToken.None);
                var nameTaken = e.IsUniqueViolation(NameIndex);
                await audit.RecordAsync(new AuditEvent("vm.create", AuditResults.Failure, "vm", null, nameTaken ? "name_taken" : "mac_taken",
                    new { name = request.Name }), cancellationToken);
                return nameTaken
                    ? new Conflict($"You already have a VM named '{request.Name}'.", "name")
                    : new Conflict("Another VM took the same MAC address at the same moment; send the request again.");
            }
        }

        crashPoints.Reach(CrashPoints.VmCreateRowInserted);
        try
        {
            var diskPath = host.DiskPath(vm.Id);
            if (isInstall)
            {
                await QemuImg.CreateBlankAsync(diskPath, vm.DiskGb, CancellationToken.None);
            }
            else
            {
                await QemuImg.CreateOverlayAsync(diskPath, images.PathOf(image), image.Format, vm.DiskGb, CancellationToken.None);
            }

            crashPoints.Reach(CrashPoints.VmCreateDiskCreated);
            var xml = DomainXml.Build(Spec(vm));
            await Task.Run(() => host.Hypervisor.Run(c =>
            {
                using var domain = c.DefineDomain(xml);
                if (request.Start)
                {
                    domain.Create();
                }
            }), CancellationToken.None);

            crashPoints.Reach(CrashPoints.VmCreateDomainDefined);
            db.AuditLogs.Add(audit.Row(new AuditEvent("vm.create", AuditResults.Success, "vm", vm.Id.ToString(),
                Details: new
                {
                    name = vm.Name, vm.Vcpus, memory_mb = vm.MemoryMb, disk_gb = vm.DiskGb, image_id = vm.ImageId, started = request.Start,
                    placement = new { host_id = host.Id, host = host.Name, strategy = placement.Options.Strategy.ToString().ToLowerInvariant(), reason = vm.PlacementReason },
                    anti_affinity_group = vm.AntiAffinityGroup,
                })));
            // Events last: they commit with the row (a client that sees vm.created can read the VM).
            events.Stage(db, new EventDraft(EventTypes.VmCreated, vm.OwnerId, vm.Id, VmResponse.From(vm)));
            states.Transition(db, vm, request.Start ? VmStates.Running : VmStates.Stopped, VmStateReason.Create);
            // A database lost here leaves the row `creating` with its disk and domain: recovery completes it.
            await db.SaveChangesAsync(CancellationToken.None);
        }
        catch (Exception e) when (e is LibvirtException or QemuImgException or HypervisorUnavailableException or IOException)
        {
            var full = e is not HypervisorUnavailableException && host.OutOfSpace(e);
            var rolledBack = await RollBackCreateAsync(vm);
            await audit.RecordAsync(new AuditEvent("vm.create", AuditResults.Failure, "vm", vm.Id.ToString(), full ? "no_space" : "create_failed",
                new { name = vm.Name, error = e.Message, rolled_back = rolledBack }), CancellationToken.None);
            if (e is HypervisorUnavailableException)
            {
                throw;
            }

            return full
                ? new InsufficientStorage("The VM could not be created")
                : new RolledBack("VM creation failed", $"The VM could not be created and nothing was kept: {e.Message}");
        }

        return VmResponse.From(vm);
    }

    public async Task<Outcome<VmResponse>> ActAsync(Guid id, VmAction action, ClaimsPrincipal caller, CancellationToken cancellationToken)
    {
        await using var vmLock = await locks.AcquireAsync(id, cancellationToken);
        var vm = await FindAsync(id, caller, cancellationToken);
        if (vm is null)
        {
            return new NotFound("The VM");
        }

        var auditAction = "vm." + action.ToString().ToLowerInvariant();
        if (PendingProblem(vm) is { } pending)
        {
            return pending;
        }

        var host = hosts.Of(vm);
        var domainState = await Task.Run(() => host.Hypervisor.Run(c => ReadState(c, vm.Id)), CancellationToken.None);
        states.Observe(db, vm, domainState, VmStateReason.Observed);
        switch (VmActions.Plan(action, vm.State))
        {
            case ActionPlan.NoOp:
                await db.SaveChangesAsync(CancellationToken.None);
                return VmResponse.From(vm);
            case ActionPlan.Conflict:
                await db.SaveChangesAsync(CancellationToken.None);
                await audit.RecordAsync(new AuditEvent(auditAction, AuditResults.Failure, "vm", id.ToString(), "invalid_state", new { state = vm.State }), cancellationToken);
                return new InvalidState($"Cannot {action.ToString().ToLowerInvariant()} a VM that is {vm.State}.", vm.State);
        }

        // A start takes running capacity: the check holds the system quota row until the new state is saved.
        await using var capacity = action == VmAction.Start ? await db.Database.BeginTransactionAsync(cancellationToken) : null;
        if (capacity is not null && await quotas.CheckStartAsync(vm.OwnerId, vm.Vcpus, vm.MemoryMb, cancellationToken) is { } full)
        {
            return full;
        }

        try
        {
            states.Transition(db, vm, await Task.Run(() => Perform(host.Hypervisor, vm.Id, action), CancellationToken.None), VmStateReason.For(action));
        }
        catch (LibvirtException e)
        {
            states.Observe(db, vm, await Task.Run(() => host.Hypervisor.Run(c => ReadState(c, vm.Id)), CancellationToken.None), VmStateReason.Observed);
            await db.SaveChangesAsync(CancellationToken.None);
            await audit.RecordAsync(new AuditEvent(auditAction, AuditResults.Failure, "vm", id.ToString(), "libvirt_error", new { error = e.Message }), cancellationToken);
            return new OperationFailed("VM action failed", e.Message, vm.State);
        }
        catch (TimeoutException e)
        {
            states.Observe(db, vm, await Task.Run(() => host.Hypervisor.Run(c => ReadState(c, vm.Id)), CancellationToken.None), VmStateReason.Observed);
            await db.SaveChangesAsync(CancellationToken.None);
            await audit.RecordAsync(new AuditEvent(auditAction, AuditResults.Failure, "vm", id.ToString(), "timeout", new { error = e.Message }), cancellationToken);
            return new OperationFailed("VM action timed out", e.Message, vm.State);
        }

        vm.UpdatedAt = clock.GetUtcNow();
        await db.SaveChangesAsync(CancellationToken.None);
        if (capacity is not null)
        {
            await capacity.CommitAsync(CancellationToken.None);
        }

        await audit.RecordAsync(new AuditEvent(auditAction, AuditResults.Success, "vm", id.ToString(), Details: new { state = vm.State }), cancellationToken);
        return VmResponse.From(vm);
    }

    public async Task<Outcome<VmResponse>> UpdateAsync(Guid id, UpdateVmRequest request, ClaimsPrincipal caller, CancellationToken cancellationToken)
    {
        await using var vmLock = await locks.AcquireAsync(id, cancellationToken);
        var vm = await FindAsync(id, caller, cancellationToken);
        if (vm is null)
        {
            return new NotFound("The VM");
        }

        if (PendingProblem(vm) is { } pending)
        {
            return pending;
        }

        // Only what differs from the row is a change; sending the current values is a 200 no-op.
        var newVcpus = request.Vcpus is { } v && v != vm.Vcpus ? v : (int?)null;
        var newMemoryMb = request.MemoryMb is { } m && m != vm.MemoryMb ? m : (int?)null;
        var newName = request.Name is { } requestedName && requestedName != vm.Name ? requestedName : null;
        var resizes = newVcpus is not null || newMemoryMb is not null;
        if (!resizes && newName is null)
        {
            return VmResponse.From(vm);
        }

        NodeInfo? node = resizes ? await Task.Run(() => hosts.Of(vm).Capacity(), cancellationToken) : null;
        var problem = newName is { } name && VmRules.NameProblem(name) is { } n ? new Invalid("name", n)
            : newVcpus is { } vcpus && VmRules.VcpusProblem(vcpus, node!.Cpus) is { } c ? new Invalid("vcpus", c)
            : newMemoryMb is { } memory && VmRules.MemoryProblem(memory, (long)(node!.MemoryKiB / 1024)) is { } mm ? new Invalid("memory_mb", mm)
            : null;
        if (problem is not null)
        {
            return problem;
        }

        if (resizes && vm.State != VmStates.Stopped)
        {
            return new InvalidState("vcpus and memory can change only while the VM is stopped.", vm.State);
        }

        // Growth is checked against the quotas and reserved by the update in the same transaction.
        await using var transaction = resizes ? await db.Database.BeginTransactionAsync(cancellationToken) : null;
        var growth = new QuotaRequest(Vcpus: (newVcpus ?? vm.Vcpus) - vm.Vcpus, MemoryMb: (newMemoryMb ?? vm.MemoryMb) - vm.MemoryMb);
        if (transaction is not null && await quotas.CheckAsync(vm.OwnerId, growth, cancellationToken) is { } denied)
        {
            return denied;
        }

        var before = new { name = vm.Name, vcpus = vm.Vcpus, memory_mb = vm.MemoryMb };
        vm.Name = newName ?? vm.Name;
        vm.Vcpus = newVcpus ?? vm.Vcpus;
        vm.MemoryMb = newMemoryMb ?? vm.MemoryMb;
        var result = await RedefineAsync(vm, "vm.update", new { before, after = new { name = vm.Name, vcpus = vm.Vcpus, memory_mb = vm.MemoryMb } }, cancellationToken);
        if (transaction is not null)
        {
            await transaction.CommitAsync(CancellationToken.None);
        }

        return result;
    }

    /// <summary>Attaches an ISO (or detaches with null) and/or sets the boot order; the VM must be stopped.</summary>
    public async Task<Outcome<VmResponse>> ConfigureBootAsync(
        Guid id, Guid? cdromImageId, bool detach, IReadOnlyList<string>? bootOrder, ClaimsPrincipal caller, CancellationToken cancellationToken)
    {
        await using var vmLock = await locks.AcquireAsync(id, cancellationToken);
        var vm = await FindAsync(id, caller, cancellationToken);
        if (vm is null)
        {
            return new NotFound("The VM");
        }

        if (PendingProblem(vm) is { } pending)
        {
            return pending;
        }

        if (cdromImageId is { } isoId && !await db.Images.AnyAsync(i => i.Id == isoId && i.Kind == ImageKinds.Iso, cancellationToken))
        {
            return new Invalid("image_id", "No such ISO image.");
        }

        if (bootOrder is not null && VmRules.BootOrderProblem(bootOrder) is { } orderProblem)
        {
            return new Invalid("devices", orderProblem);
        }

        if (vm.State != VmStates.Stopped)
        {
            return new InvalidState("The CD-ROM and boot order can change only while the VM is stopped.", vm.State);
        }

        vm.CdromImageId = detach ? null : cdromImageId ?? vm.CdromImageId;
        vm.BootOrder = bootOrder is null ? vm.BootOrder : string.Join(',', bootOrder);
        var action = bootOrder is not null ? "vm.boot_order" : detach ? "vm.cdrom.detach" : "vm.cdrom.attach";
        return await RedefineAsync(vm, action, new { cdrom_image_id = vm.CdromImageId, boot_order = vm.BootOrder }, cancellationToken);
    }

    /// <summary>Null when the VM is gone: its row, domain and disk.</summary>
    public async Task<Failure?> DeleteAsync(Guid id, ClaimsPrincipal caller, CancellationToken cancellationToken)
    {
        await using var vmLock = await locks.AcquireAsync(id, cancellationToken);
        var vm = await FindAsync(id, caller, cancellationToken);
        if (vm is null)
        {
            return new NotFound("The VM");
        }

        if (vm.State == VmStates.Unknown)
        {
            // Its host did not answer: either it answers now (and the VM is what libvirt shows) or this is the 503, nothing changed.
            states.Observe(db, vm, await Task.Run(() => hosts.Of(vm).Hypervisor.Run(c => ReadState(c, vm.Id)), CancellationToken.None), VmStateReason.Observed);
        }

        // The intent first: a delete cut short from here on is finished by recovery, never left half done.
        var before = vm.State;
        var beforeReason = vm.StateReason;
        states.Transition(db, vm, VmStates.Deleting, VmStateReason.Delete);
        await db.SaveChangesAsync(CancellationToken.None);
        crashPoints.Reach(CrashPoints.VmDeleteMarked);

        // A console watching it ends as vm_deleted: by the vm.state_changed to deleting just committed
        // (ConsoleVmConsumer), or, should the VNC socket close first, by the relay finding the VM deleting.
        try
        {
            await Task.Run(() => hosts.Of(vm).Hypervisor.Run(c => RemoveDomain(c, vm.Id)), CancellationToken.None);
        }
        catch (LibvirtException e)
        {
            // libvirt refused (the domain is still there): nothing was removed, the VM stays as it was.
            states.Transition(db, vm, before, VmStateReason.DeleteFailed, beforeReason);
            await db.SaveChangesAsync(CancellationToken.None);
            await audit.RecordAsync(new AuditEvent("vm.delete", AuditResults.Failure, "vm", id.ToString(), "libvirt_error", new { error = e.Message }), cancellationToken);
            return new OperationFailed("VM deletion failed", e.Message, vm.State);
        }

        crashPoints.Reach(CrashPoints.VmDeleteDomainRemoved);
        hosts.Of(vm).DeleteVmFiles(vm.Id);
        crashPoints.Reach(CrashPoints.VmDeleteFilesRemoved);
        db.Vms.Remove(vm);
        db.AuditLogs.Add(audit.Row(new AuditEvent("vm.delete", AuditResults.Success, "vm", id.ToString(), Details: new { name = vm.Name })));
        events.Stage(db, Deleted(vm));
        await db.SaveChangesAsync(CancellationToken.None);
        return null;
    }

    /// <summary>The event of a VM whose row is gone (a delete, or one that recovery finished).</summary>
    internal static EventDraft Deleted(Vm vm) => new(EventTypes.VmDeleted, vm.OwnerId, vm.Id, new { vm_id = vm.Id, name = vm.Name });

    /// <summary>Why no host can take the VM, as the answer to the create.</summary>
    private static Failure PlacementProblem(PlacementDecision decision, CreateVmRequest request) => decision.Refusal switch
    {
        // Every host is down: the hosts' own errors are the 503.
        PlacementRefusal.NoHostUp => throw new HypervisorUnavailableException($"No host answers; the VM cannot be placed now ({decision.Reason})."),
        PlacementRefusal.AntiAffinity => new Conflict(
            $"Every host with room already has one of your VMs in the anti-affinity group '{request.AntiAffinityGroup}'.", "anti_affinity_group"),
        // Larger than every host that answers: the request is wrong, whatever the hosts carry.
        _ when request.Vcpus > decision.MaxCpus => new Invalid("vcpus", VmRules.VcpusProblem(request.Vcpus, decision.MaxCpus)!),
        _ when request.MemoryMb > decision.MaxMemoryMib => new Invalid("memory_mb", VmRules.MemoryProblem(request.MemoryMb, decision.MaxMemoryMib)!),
        _ when decision.DiskFull => new InsufficientStorage("The VM could not be created"),
        _ => new InsufficientCapacity($"No host has room for {request.Vcpus} vCPUs and {request.MemoryMb} MiB (with the overcommit ratios) and a {request.DiskGb} GiB disk."),
    };

    /// <summary>
    /// Two creates in one group at the same moment must not both land on the same host: the group is
    /// locked for the rest of the caller's transaction (a transaction-scoped advisory lock keyed by
    /// owner and group), then checked again.
    /// </summary>
    private async Task<Conflict?> GroupTakenAsync(Vm vm, string group, RegisteredHost host, CancellationToken cancellationToken)
    {
        var key = $"{vm.OwnerId}/{group}";
        await db.Database.ExecuteSqlInterpolatedAsync($"SELECT pg_advisory_xact_lock({AntiAffinityLockClass}, hashtext({key}))", cancellationToken);
        return await db.Vms.AnyAsync(v => v.OwnerId == vm.OwnerId && v.AntiAffinityGroup == group && v.HostId == host.Id, cancellationToken)
            ? new Conflict($"Another of your VMs in the anti-affinity group '{group}' was just placed on the same host; send the request again.", "anti_affinity_group")
            : null;
    }

    /// <summary>
    /// A MAC no VM has yet. The 24 random bits collide often enough at scale to matter (with 10,000
    /// VMs about one create in 1,700 drew a taken one), so ask the index first; two creates drawing
    /// the same unused MAC at the same moment is what remains for the unique index to refuse.
    /// </summary>
    private async Task<string> UnusedMacAddressAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var mac = VmRules.NewMacAddress();
            if (!await db.Vms.AnyAsync(v => v.MacAddress == mac, cancellationToken))
            {
                return mac;
            }
        }
    }

    public DomainSpec Spec(Vm vm)
    {
        var cdrom = vm.CdromImageId is { } isoId ? db.Images.AsNoTracking().First(i => i.Id == isoId) : null;
        var host = hosts.Of(vm);
        return new DomainSpec(DomainName(vm.Id), vm.Id, host.Hypervisor.DomainType, vm.Name, vm.Vcpus, vm.MemoryMb,
            host.DiskPath(vm.Id), cdrom is null ? null : images.PathOf(cdrom), vm.BootOrder.Split(','),
            string.IsNullOrWhiteSpace(options.Value.Network) ? null : options.Value.Network, vm.MacAddress, host.SerialLogPath(vm.Id));
    }

    /// <summary>Re-defines the (stopped) domain from the row; the row is saved only if libvirt accepted it.</summary>
    private async Task<Outcome<VmResponse>> RedefineAsync(Vm vm, string action, object details, CancellationToken cancellationToken)
    {
        var xml = DomainXml.Build(Spec(vm));
        try
        {
            await Task.Run(() => hosts.Of(vm).Hypervisor.Run(c => c.DefineDomain(xml).Dispose()), CancellationToken.None);
            vm.UpdatedAt = clock.GetUtcNow();
            events.Stage(db, new EventDraft(EventTypes.VmUpdated, vm.OwnerId, vm.Id, VmResponse.From(vm)));
            await db.SaveChangesAsync(CancellationToken.None);
        }
        catch (DbUpdateException e) when (e.IsUniqueViolation())
        {
            // Put libvirt back to what the database still says.
            await db.Entry(vm).ReloadAsync(CancellationToken.None);
            var original = DomainXml.Build(Spec(vm));
            await Task.Run(() => hosts.Of(vm).Hypervisor.Run(c => c.DefineDomain(original).Dispose()), CancellationToken.None);
            return new Conflict("You already have a VM with that name.");
        }
        catch (LibvirtException e)
        {
            await db.Entry(vm).ReloadAsync(CancellationToken.None);
            await audit.RecordAsync(new AuditEvent(action, AuditResults.Failure, "vm", vm.Id.ToString(), "libvirt_error", new { error = e.Message }), cancellationToken);
            return new OperationFailed("VM change failed", e.Message);
        }

        await audit.RecordAsync(new AuditEvent(action, AuditResults.Success, "vm", vm.Id.ToString(), Details: details), cancellationToken);
        return VmResponse.From(vm);
    }

    private string Perform(Hypervisor hypervisor, Guid vmId, VmAction action) => hypervisor.Run(c =>
    {
        using var domain = c.LookupDomainByUuid(vmId) ?? throw new LibvirtException("The VM's domain no longer exists.", LibvirtErrorCode.NoDomain, 0, "lookup");
        switch (action)
        {
            case VmAction.Start:
                domain.Create();
                return VmStates.Running;
            case VmAction.Stop:
                domain.Destroy();
                return VmStates.Stopped;
            case VmAction.Suspend:
                domain.Suspend();
                return VmStates.Paused;
            case VmAction.Resume:
                domain.Resume();
                return VmStates.Running;
            case VmAction.Reboot:
                domain.Reboot();
                return VmStates.Running;
            default:
                return ShutDown(domain);
        }
    });

    /// <summary>ACPI power button, then wait for the guest to power itself off.</summary>
    private string ShutDown(LibvirtDomain domain)
    {
        domain.Shutdown();
        var deadline = clock.GetUtcNow().AddSeconds(options.Value.ShutdownTimeoutSeconds);
        while (domain.GetState().State != DomainState.Shutoff)
        {
            if (clock.GetUtcNow() > deadline)
            {
                throw new TimeoutException($"The guest did not shut down within {options.Value.ShutdownTimeoutSeconds} s; use stop to power it off.");
            }

            Thread.Sleep(200);
        }

        return VmStates.Stopped;
    }

    /// <summary>The domain's state, or null when the domain does not exist.</summary>
    public static DomainState? ReadState(LibvirtConnection connection, Guid vmId)
    {
        using var domain = connection.LookupDomainByUuid(vmId);
        return domain?.GetState().State;
    }

    /// <summary>Refuses a VM whose create or delete is still under way (or awaits recovery).</summary>
    private static InvalidState? PendingProblem(Vm vm) => VmStates.IsPending(vm.State) ? Busy(vm) : null;

    /// <summary>The VM's state does not allow the operation; the message names it.</summary>
    public static InvalidState Busy(Vm vm) => new($"The VM is {vm.State}.", vm.State);

    /// <summary>Powers off and undefines the domain, if there is one.</summary>
    internal static void RemoveDomain(LibvirtConnection connection, Guid vmId)
    {
        using var domain = connection.LookupDomainByUuid(vmId);
        if (domain is null)
        {
            return;
        }

        if (domain.IsActive)
        {
            domain.Destroy();
        }

        // Snapshot metadata and a managed save would otherwise make undefine refuse (BIOS guests have no NVRAM).
        domain.Undefine(DomainUndefineFlags.SnapshotsMetadata | DomainUndefineFlags.ManagedSave);
    }

    /// <summary>
    /// Undoes a failed create; true when nothing is left. The disk goes first, so that whatever stays
    /// behind (libvirt unreachable) can only be rolled back by recovery, never completed.
    /// </summary>
    private async Task<bool> RollBackCreateAsync(Vm vm)
    {
        hosts.Of(vm).DeleteVmFiles(vm.Id);
        try
        {
            // Also when define seemed to fail: libvirtd may have defined it before its connection broke.
            await Task.Run(() => hosts.Of(vm).Hypervisor.Run(c => RemoveDomain(c, vm.Id)));
        }
        catch (Exception e) when (e is LibvirtException or HypervisorUnavailableException)
        {
            // The row stays `creating`: it keeps the domain known, and recovery removes both once libvirt answers.
            LogRollbackIncomplete(vm.Id, DomainName(vm.Id), e.Message);
            return false;
        }

        db.Vms.Remove(vm);
        await db.SaveChangesAsync(CancellationToken.None);
        return true;
    }

    [LoggerMessage(EventId = 1210, Level = LogLevel.Warning,
        Message = "Rolling back VM {VmId}: could not remove domain {Domain} ({Reason}); recovery finishes the rollback when libvirt answers")]
    private partial void LogRollbackIncomplete(Guid vmId, string domain, string reason);
}
