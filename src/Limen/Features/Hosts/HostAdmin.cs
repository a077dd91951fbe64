using Limen.Data;
using Limen.Features.Audit;
using Limen.Features.Events;
using Limen.Features.Outcomes;
using Limen.Libvirt;
using Limen.Web;
using Microsoft.EntityFrameworkCore;

namespace Limen.Features.Hosts;

public sealed record AddHostRequest(
    string? Name, string? Uri, string? ConsoleAddress, string? DiskDir, string? MigrationAddress = null, string? VirtualizationType = null);

/// <summary>libvirt's node info (null while the host never answered) and the disk folder's file system.</summary>
public sealed record HostCapacityView(int Cpus, long MemoryMib, long DiskTotalBytes, long DiskFreeBytes);

/// <summary>What Limen's VMs on the host are allocated, in any state (as the quotas and placement count).</summary>
public sealed record HostAllocatedView(int Vcpus, long MemoryMib, long DiskGb);

/// <param name="State">up, down (its libvirt does not answer) or maintenance (answers or not; placement skips it).</param>
public sealed record HostView(
    Guid Id, string Name, string Uri, string ConsoleAddress, string? MigrationAddress, string DiskDir, string VirtualizationType,
    string State, string Source, HostCapacityView? Capacity, HostAllocatedView Allocated, int VmCount);

/// <summary>The data of host.added and host.removed.</summary>
public sealed record HostChange(Guid HostId, string Name);

/// <summary>The data of host.mode_changed.</summary>
public sealed record HostModeChange(Guid HostId, string Name, string Mode);

public static class HostStates
{
    public const string Up = "up";
    public const string Down = "down";
    public const string Maintenance = "maintenance";
}

/// <summary>
/// The admins' host management (/api/admin/hosts; drain ends in <see cref="SetModeAsync"/>): every
/// change is validated first, committed with its audit row and its event, and then applied to this
/// server's registry — the other servers apply it from the event (<see cref="HostEventConsumer"/>).
/// </summary>
public sealed class HostAdmin(LimenDbContext db, HostRegistry hosts, AuditTrail audit, EventOutlet events, TimeProvider clock)
{
    public async Task<IReadOnlyList<HostView>> ListAsync(CancellationToken cancellationToken)
    {
        var registered = hosts.All;
        var allocated = await AllocatedAsync(null, cancellationToken);
        var views = await Task.WhenAll(registered.Select(h => Task.Run(() => View(h, allocated.GetValueOrDefault(h.Id)), cancellationToken)));
        return views;
    }

    public async Task<Outcome<HostView>> GetAsync(Guid id, CancellationToken cancellationToken)
    {
        if (hosts.Find(id) is not { } host)
        {
            return new NotFound("The host");
        }

        var allocated = await AllocatedAsync(id, cancellationToken);
        return await Task.Run(() => View(host, allocated.GetValueOrDefault(id)), cancellationToken);
    }

    public async Task<Outcome<HostView>> AddAsync(AddHostRequest request, CancellationToken cancellationToken)
    {
        var type = string.IsNullOrWhiteSpace(request.VirtualizationType) ? "auto" : request.VirtualizationType;
        var migration = string.IsNullOrWhiteSpace(request.MigrationAddress) ? null : request.MigrationAddress;
        Failure? invalid = HostRules.NameProblem(request.Name) is { } n ? new Invalid("name", "name " + n)
            : HostRules.UriProblem(request.Uri) is { } u ? new Invalid("uri", u)
            : HostRules.AddressProblem(request.ConsoleAddress) is { } c ? new Invalid("console_address", "console_address " + c)
            : migration is not null && HostRules.AddressProblem(migration) is { } m ? new Invalid("migration_address", "migration_address " + m)
            : HostRules.DiskDirProblem(request.DiskDir) is { } d ? new Invalid("disk_dir", d)
            : !Directory.Exists(request.DiskDir) ? new Invalid("disk_dir", "disk_dir must be a folder that exists on this server (the host's QEMU must reach the same path).")
            : HostRules.VirtualizationTypeProblem(type) is { } t ? new Invalid("virtualization_type", "virtualization_type " + t)
            : hosts.All.Any(h => h.Name == request.Name) ? new Conflict($"A host named '{request.Name}' exists.", "name")
            : hosts.All.Any(h => h.Uri == request.Uri) ? new Conflict($"A host with the URI '{request.Uri}' exists.", "uri")
            : null;
        if (invalid is null && await Task.Run(() => Unreachable(request.Uri!), cancellationToken) is { } why)
        {
            invalid = new Invalid("uri", $"libvirt at {request.Uri} does not answer: {why}");
        }

        if (invalid is not null)
        {
            await audit.RecordAsync(new AuditEvent("host.add", AuditResults.Failure, "host", null, invalid is Conflict ? "taken" : "validation",
                new { name = request.Name, uri = request.Uri }), cancellationToken);
            return invalid;
        }

        var row = new VmHost
        {
            Id = Guid.NewGuid(), Name = request.Name!, Uri = request.Uri!, ConsoleAddress = request.ConsoleAddress!, MigrationAddress = migration,
            DiskDir = request.DiskDir, VirtualizationType = type, Source = HostSources.Api, Mode = HostModes.Active, CreatedAt = clock.GetUtcNow(),
        };
        db.Hosts.Add(row);
        db.AuditLogs.Add(audit.Row(new AuditEvent("host.add", AuditResults.Success, "host", row.Id.ToString(),
            Details: new { name = row.Name, uri = row.Uri, console_address = row.ConsoleAddress, migration_address = row.MigrationAddress, disk_dir = row.DiskDir })));
        events.Stage(db, new EventDraft(EventTypes.HostAdded, null, null, new HostChange(row.Id, row.Name)));
        try
        {
            await db.SaveChangesAsync(cancellationToken);
        }
        catch (DbUpdateException e) when (e.IsUniqueViolation())
        {
            // Another server added one of this name or URI at the same moment.
            db.ChangeTracker.Clear();
            await audit.RecordAsync(new AuditEvent("host.add", AuditResults.Failure, "host", null, "taken", new { name = request.Name, uri = request.Uri }), cancellationToken);
            return new Conflict("A host with that name or URI exists.");
        }

        hosts.Add(row);
        return await GetAsync(row.Id, cancellationToken);
    }

    /// <summary>Maintenance keeps placement (and migrations) off the host; its VMs stay and work. Drain calls this at its end.</summary>
    public async Task<Outcome<HostView>> SetModeAsync(Guid hostId, HostMode mode, CancellationToken cancellationToken)
    {
        var row = await db.Hosts.FirstOrDefaultAsync(h => h.Id == hostId, cancellationToken);
        if (row is null || hosts.Find(hostId) is not { } host)
        {
            return new NotFound("The host");
        }

        var word = HostModeNames.Of(mode);
        if (row.Mode != word)
        {
            row.Mode = word;
            db.AuditLogs.Add(audit.Row(new AuditEvent(mode == HostMode.Maintenance ? "host.maintenance" : "host.activate", AuditResults.Success, "host",
                hostId.ToString(), Details: new { name = row.Name })));
            events.Stage(db, new EventDraft(EventTypes.HostModeChanged, null, null, new HostModeChange(hostId, row.Name, word)));
            await db.SaveChangesAsync(cancellationToken);
        }

        host.Mode = mode;
        return await GetAsync(hostId, cancellationToken);
    }

    /// <summary>Only a host added through the API, and only while no VM is on it.</summary>
    public async Task<Failure?> RemoveAsync(Guid hostId, CancellationToken cancellationToken)
    {
        var row = await db.Hosts.FirstOrDefaultAsync(h => h.Id == hostId, cancellationToken);
        if (row is null || hosts.Find(hostId) is null)
        {
            return new NotFound("The host");
        }

        var vms = await db.Vms.CountAsync(v => v.HostId == hostId, cancellationToken);
        Failure? refused = row.Source != HostSources.Api ? new Conflict($"The host '{row.Name}' comes from the configuration (Limen:Hypervisor, Limen:Hosts); remove it there.")
            : vms > 0 ? new Conflict($"The host '{row.Name}' still has {vms} VMs; migrate or delete them first (drain).")
            : null;
        if (refused is not null)
        {
            await audit.RecordAsync(new AuditEvent("host.remove", AuditResults.Failure, "host", hostId.ToString(), vms > 0 ? "has_vms" : "configured",
                new { name = row.Name, vms }), cancellationToken);
            return refused;
        }

        db.Hosts.Remove(row);
        db.AuditLogs.Add(audit.Row(new AuditEvent("host.remove", AuditResults.Success, "host", hostId.ToString(), Details: new { name = row.Name, uri = row.Uri })));
        events.Stage(db, new EventDraft(EventTypes.HostRemoved, null, null, new HostChange(hostId, row.Name)));
        try
        {
            await db.SaveChangesAsync(cancellationToken);
        }
        catch (DbUpdateException e) when (e.IsForeignKeyViolation())
        {
            // A VM was placed on it between the count and the delete.
            db.ChangeTracker.Clear();
            await audit.RecordAsync(new AuditEvent("host.remove", AuditResults.Failure, "host", hostId.ToString(), "has_vms", new { name = row.Name }), cancellationToken);
            return new Conflict($"The host '{row.Name}' has VMs again; migrate or delete them first.");
        }

        hosts.Remove(hostId);
        return null;
    }

    private async Task<Dictionary<Guid, (HostAllocatedView Allocated, int Count)>> AllocatedAsync(Guid? hostId, CancellationToken cancellationToken)
    {
        var rows = await db.Vms.AsNoTracking().Where(v => hostId == null || v.HostId == hostId).GroupBy(v => v.HostId)
            .Select(g => new { g.Key, Vcpus = g.Sum(v => v.Vcpus), MemoryMib = g.Sum(v => (long)v.MemoryMb), DiskGb = g.Sum(v => (long)v.DiskGb), Count = g.Count() })
            .ToListAsync(cancellationToken);
        return rows.ToDictionary(r => r.Key, r => (new HostAllocatedView(r.Vcpus, r.MemoryMib, r.DiskGb), r.Count));
    }

    private static HostView View(RegisteredHost host, (HostAllocatedView Allocated, int Count) allocated)
    {
        var up = host.Hypervisor.Probe();
        var node = up ? host.KnownCapacity() : null;
        long total = 0, free = 0;
        try
        {
            var drive = new DriveInfo(host.DiskDir);
            (total, free) = (drive.TotalSize, drive.AvailableFreeSpace);
        }
        catch (IOException)
        {
            // The folder's file system is not mounted: no figures rather than no answer.
        }

        var state = host.Mode == HostMode.Maintenance ? HostStates.Maintenance : up ? HostStates.Up : HostStates.Down;
        return new HostView(host.Id, host.Name, host.Uri, host.ConsoleAddress, host.MigrationAddress, host.DiskDir, host.Hypervisor.DomainType,
            state, host.Source, node is null ? null : new HostCapacityView(node.Cpus, (long)(node.MemoryKiB / 1024), total, free),
            allocated.Allocated ?? new HostAllocatedView(0, 0, 0), allocated.Count);
    }

    /// <summary>Null when libvirt at the URI answers; else its error.</summary>
    private static string? Unreachable(string uri)
    {
        try
        {
            using var connection = LibvirtConnection.Open(uri);
            connection.GetLibVersion();
            return null;
        }
        catch (LibvirtException e)
        {
            return e.Message;
        }
    }
}
