using System.Diagnostics;
using Limen.Data;
using Limen.Features.Audit;
using Limen.Features.Events;
using Limen.Features.Hosts;
using Limen.Features.Outcomes;
using Limen.Features.Vms;
using Limen.Libvirt;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Limen.Features.Migration;

/// <summary>
/// Moves a VM to another host (admins; POST /api/vms/{id}/actions/migrate, and drains). A running or
/// paused VM moves by libvirt live migration, a stopped one offline (its definition, and its disk).
/// Disks are copied into the target's disk folder unless both hosts are registered with the same
/// folder, which says they share it. The intent (state migrating, a vm_migrations row) is saved
/// before either host is touched; however the move ends, <see cref="MigrationSettlement"/> decides
/// from where the domain is, so the VM is never lost and the target keeps nothing of a failed move.
/// </summary>
public sealed partial class MigrationService(
    LimenDbContext db,
    HostRegistry hosts,
    HostPlacement placement,
    VmLocks locks,
    VmStateMachine states,
    MigrationSettlement settlement,
    EventOutlet events,
    AuditTrail audit,
    IDbContextFactory<LimenDbContext> progressDb,
    IOptions<MigrationOptions> options,
    TimeProvider clock,
    ILogger<MigrationService> logger)
{
    private const string AuditAction = "vm.migrate";

    public async Task<Outcome<VmResponse>> MigrateAsync(Guid vmId, Guid? targetHostId, CancellationToken cancellationToken)
    {
        await using var vmLock = await locks.AcquireAsync(vmId, cancellationToken);
        var vm = await db.Vms.FirstOrDefaultAsync(v => v.Id == vmId, cancellationToken);
        if (vm is null)
        {
            return new NotFound("The VM");
        }

        var source = hosts.Of(vm);
        if (!VmStates.IsPending(vm.State))
        {
            // What the host shows now, as an action looks before it acts.
            states.Observe(db, vm, await Task.Run(() => source.Hypervisor.Run(c => VmService.ReadState(c, vm.Id)), CancellationToken.None), VmStateReason.Observed);
            await db.SaveChangesAsync(CancellationToken.None);
        }

        var (target, refusal) = await ChooseTargetAsync(vm, source, targetHostId, cancellationToken);
        if (refusal is not null)
        {
            await audit.RecordAsync(new AuditEvent(AuditAction, AuditResults.Failure, "vm", vm.Id.ToString(), RefusalCode(refusal),
                new { state = vm.State, source_host_id = source.Id, target_host_id = targetHostId, reason = Describe(refusal) }), cancellationToken);
            return refusal;
        }

        var live = vm.State is not VmStates.Stopped;
        var shared = SharesDisks(source, target!);
        var migration = new VmMigration
        {
            Id = Guid.NewGuid(),
            VmId = vm.Id,
            SourceHostId = source.Id,
            TargetHostId = target!.Id,
            Mode = live ? MigrationModes.Live : MigrationModes.Offline,
            Storage = shared ? MigrationStorage.Shared : MigrationStorage.Copy,
            Result = MigrationResults.Running,
            StartedAt = clock.GetUtcNow(),
        };
        db.VmMigrations.Add(migration);
        states.Transition(db, vm, VmStates.Migrating, VmStateReason.Migration);
        await db.SaveChangesAsync(CancellationToken.None);
        LogStarted(vm.Id, migration.Mode, source.Name, target.Name, migration.Storage);

        // From here on the move is carried through or undone, never abandoned half way.
        var wall = Stopwatch.StartNew();
        string? error = null;
        long? downtime = null;
        try
        {
            downtime = live ? await MoveLiveAsync(vm, migration, source, target, shared) : await MoveOfflineAsync(vm, source, target, shared);
        }
        catch (Exception e) when (e is LibvirtException or HypervisorUnavailableException or QemuImgException or IOException)
        {
            error = e.Message;
        }

        wall.Stop();
        var end = await settlement.SettleAsync(vm, migration, error, downtime);
        var details = new
        {
            mode = migration.Mode,
            storage = migration.Storage,
            source_host_id = source.Id,
            source_host = source.Name,
            target_host_id = target.Id,
            target_host = target.Name,
            migration_id = migration.Id,
            wall_ms = wall.ElapsedMilliseconds,
            downtime_ms = migration.DowntimeMs,
            data_total = migration.DataTotal,
            end = end.ToString(),
            error,
            state = vm.State,
        };
        if (end == MigrationEnd.Moved)
        {
            LogMoved(vm.Id, source.Name, target.Name, wall.ElapsedMilliseconds, migration.DowntimeMs);
            await audit.RecordAsync(new AuditEvent(AuditAction, AuditResults.Success, "vm", vm.Id.ToString(), Details: details), cancellationToken);
            return VmResponse.From(vm);
        }

        LogFailed(vm.Id, source.Name, target.Name, end.ToString(), error ?? "");
        await audit.RecordAsync(new AuditEvent(AuditAction, AuditResults.Failure, "vm", vm.Id.ToString(), "libvirt_error", details), cancellationToken);
        return new OperationFailed("Migration failed", end switch
        {
            MigrationEnd.StayedOnSource => $"{error} The VM stays on {source.Name}; nothing of it is left on {target.Name}.",
            MigrationEnd.Undecided => $"{error} {source.Name} does not answer: the migration is settled when it does.",
            _ => $"{error} Neither {source.Name} nor {target.Name} shows the VM's domain.",
        }, vm.State);
    }

    /// <summary>The VM's migrations, newest first.</summary>
    public async Task<Outcome<IReadOnlyList<MigrationResponse>>> HistoryAsync(Guid vmId, CancellationToken cancellationToken)
    {
        if (!await db.Vms.AnyAsync(v => v.Id == vmId, cancellationToken))
        {
            return new NotFound("The VM");
        }

        var rows = await db.VmMigrations.AsNoTracking().Where(m => m.VmId == vmId).OrderByDescending(m => m.StartedAt).Take(50).ToListAsync(cancellationToken);
        return rows.Select(MigrationResponse.From).ToList();
    }

    /// <summary>Hosts registered with the same disk folder share it: the path reaches the same files from both.</summary>
    public static bool SharesDisks(RegisteredHost a, RegisteredHost b) =>
        string.Equals(Path.GetFullPath(a.DiskDir).TrimEnd('/'), Path.GetFullPath(b.DiskDir).TrimEnd('/'), StringComparison.Ordinal);

    private async Task<(RegisteredHost? Target, Failure? Refusal)> ChooseTargetAsync(Vm vm, RegisteredHost source, Guid? targetHostId, CancellationToken cancellationToken)
    {
        if (!VmStates.CanMigrate(vm.State))
        {
            return (null, new InvalidState($"Cannot migrate a VM that is {vm.State}.", vm.State));
        }

        var snapshots = await db.VmSnapshots.CountAsync(s => s.VmId == vm.Id, cancellationToken);
        if (snapshots > 0)
        {
            return (null, new InvalidState($"libvirt cannot migrate a VM with snapshots; this one has {snapshots}. Delete them first.", vm.State));
        }

        if (targetHostId is { } wanted)
        {
            var target = hosts.All.FirstOrDefault(h => h.Id == wanted);
            if (target is null)
            {
                return (null, new Invalid("target_host_id", "No host has that id."));
            }

            if (target.Id == source.Id)
            {
                return (null, new Invalid("target_host_id", $"The VM is already on {source.Name}."));
            }

            var check = await placement.CheckTargetAsync(db, vm, target, cancellationToken);
            return check.Fits ? (target, null) : (null, new Conflict($"{target.Name} cannot take the VM: {check.Reason}", "target_host_id"));
        }

        if (hosts.All.Count == 1)
        {
            return (null, new Conflict("No other host is registered: there is nowhere to move the VM."));
        }

        var placed = await placement.PlaceElsewhereAsync(db, vm, cancellationToken);
        return placed.Host is { } chosen ? (chosen, null) : (null, new Conflict($"No other host can take the VM: {placed.Decision.Reason}"));
    }

    /// <summary>
    /// Live migration, direct (this server holds both connections); returns the downtime the target
    /// measured. Progress is published while it runs and once more from the completed job, so even a
    /// move quicker than one progress interval reports what it moved.
    /// </summary>
    private async Task<long?> MoveLiveAsync(Vm vm, VmMigration migration, RegisteredHost source, RegisteredHost target, bool shared)
    {
        var flags = MigrationFlags.Live | MigrationFlags.PersistDestination | MigrationFlags.UndefineSource | MigrationFlags.AbortOnError;
        string? destinationXml = null;
        if (shared)
        {
            // libvirt 9 calls every file on a local file system unshared; the operator said these hosts share it.
            flags |= MigrationFlags.Unsafe;
        }
        else
        {
            var disk = await QemuImg.InfoAsync(source.DiskPath(vm.Id), CancellationToken.None);
            await QemuImg.CreateLikeAsync(target.DiskPath(vm.Id), disk, CancellationToken.None);
            // An overlay on the shared image copies only its own clusters; a standalone disk copies whole.
            flags |= disk.BackingFile is null ? MigrationFlags.CopyStorageAll : MigrationFlags.CopyStorageIncremental;
            var xml = await Task.Run(() => source.Hypervisor.Run(c => WithDomain(c, vm.Id, d => d.GetXmlDesc(DomainXmlFlags.Migratable))));
            destinationXml = Repoint(xml, vm.Id, source, target);
        }

        var parameters = new MigrationParameters
        {
            DestinationXml = destinationXml,
            MigrateUri = target.MigrationAddress is { } address ? $"tcp://{Bracketed(address)}" : null,
            ListenAddress = target.MigrationAddress,
            MigrateDisks = shared ? null : ["vda"],
            BandwidthMiBs = (ulong?)options.Value.BandwidthMiBs,
        };

        DomainJobInfo? completed;
        using (var stop = new CancellationTokenSource())
        {
            var progress = ReportProgressAsync(vm, migration, source, target, stop.Token);
            try
            {
                completed = await Task.Run(() => source.Hypervisor.RunWith(target.Hypervisor, (from, to) => WithDomain(from, vm.Id, domain =>
                {
                    using var moved = domain.MigrateTo(to, parameters, flags);
                    try
                    {
                        return moved.GetJobStats(completed: true);
                    }
                    catch (LibvirtException e)
                    {
                        // The move is done; only its figures are missing.
                        LogDowntimeUnreadable(vm.Id, e.Message);
                        return null;
                    }
                })));
            }
            finally
            {
                await stop.CancelAsync();
                await progress;
            }
        }

        if (completed is not null)
        {
            await RecordProgressAsync(vm, migration, source, target, completed);
        }

        return (long?)completed?.DowntimeMs;
    }

    /// <summary>A stopped VM: its disk copied (unless shared), defined on the target, then undefined on the source.</summary>
    private static async Task<long?> MoveOfflineAsync(Vm vm, RegisteredHost source, RegisteredHost target, bool shared)
    {
        var xml = await Task.Run(() => source.Hypervisor.Run(c => WithDomain(c, vm.Id, d => d.GetXmlDesc(DomainXmlFlags.Inactive))));
        if (!shared)
        {
            await CopyFileAsync(source.DiskPath(vm.Id), target.DiskPath(vm.Id));
            xml = Repoint(xml, vm.Id, source, target);
        }

        await Task.Run(() => target.Hypervisor.Run(c => c.DefineDomain(xml).Dispose()));
        await Task.Run(() => source.Hypervisor.Run(c => WithDomain(c, vm.Id, d =>
        {
            d.Undefine(DomainUndefineFlags.ManagedSave);
            return true;
        })));
        return null;
    }

    /// <summary>Reads the job's progress until the migration ends and publishes it (vm.migration.progress) and into its row.</summary>
    private async Task ReportProgressAsync(Vm vm, VmMigration migration, RegisteredHost source, RegisteredHost target, CancellationToken stop)
    {
        var interval = TimeSpan.FromMilliseconds(options.Value.ProgressIntervalMs);
        try
        {
            while (true)
            {
                await Task.Delay(interval, clock, stop);
                DomainJobInfo job;
                try
                {
                    job = await Task.Run(() => source.Hypervisor.Run(c => WithDomain(c, vm.Id, d => d.GetJobStats())), stop);
                }
                catch (Exception e) when (e is LibvirtException or HypervisorUnavailableException)
                {
                    // The domain left the source between two reads, or the host blinked: the migration itself says how it ended.
                    LogProgressUnreadable(vm.Id, e.Message);
                    continue;
                }

                if (job.Type is not (DomainJobType.Bounded or DomainJobType.Unbounded))
                {
                    continue;
                }

                await RecordProgressAsync(vm, migration, source, target, job);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // The migration ended.
        }
    }

    /// <summary>
    /// One reading into the migration's row and out as vm.migration.progress. Not cancelled by the
    /// migration's end: a reading taken is a reading told.
    /// </summary>
    private async Task RecordProgressAsync(Vm vm, VmMigration migration, RegisteredHost source, RegisteredHost target, DomainJobInfo job)
    {
        await using var context = await progressDb.CreateDbContextAsync(CancellationToken.None);
        await context.VmMigrations.Where(m => m.Id == migration.Id).ExecuteUpdateAsync(m => m
            .SetProperty(x => x.DataTotal, (long?)job.DataTotal)
            .SetProperty(x => x.DataRemaining, (long?)job.DataRemaining), CancellationToken.None);
        await events.PublishAsync(new EventDraft(EventTypes.VmMigrationProgress, vm.OwnerId, vm.Id,
            new MigrationProgress(vm.Id, migration.Id, source.Id, target.Id, (long?)job.DataTotal, (long?)job.DataProcessed, (long?)job.DataRemaining)), CancellationToken.None);
        migration.DataTotal = (long?)job.DataTotal;
        migration.DataRemaining = (long?)job.DataRemaining;
    }

    private static T WithDomain<T>(LibvirtConnection connection, Guid vmId, Func<LibvirtDomain, T> action)
    {
        using var domain = connection.LookupDomainByUuid(vmId)
            ?? throw new LibvirtException("The VM's domain no longer exists on its host.", LibvirtErrorCode.NoDomain, 0, "lookup");
        return action(domain);
    }

    /// <summary>The domain's XML with its disk and serial log in the target's disk folder.</summary>
    private static string Repoint(string xml, Guid vmId, RegisteredHost source, RegisteredHost target) => xml
        .Replace(source.DiskPath(vmId), target.DiskPath(vmId), StringComparison.Ordinal)
        .Replace(source.SerialLogPath(vmId), target.SerialLogPath(vmId), StringComparison.Ordinal);

    private static async Task CopyFileAsync(string from, string to)
    {
        await using var input = new FileStream(from, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.Asynchronous | FileOptions.SequentialScan);
        await using var output = new FileStream(to, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20, FileOptions.Asynchronous);
        await input.CopyToAsync(output);
        await output.FlushAsync();
        output.Flush(flushToDisk: true);
    }

    private static string Bracketed(string address) => address.Contains(':', StringComparison.Ordinal) ? $"[{address}]" : address;

    private static string RefusalCode(Failure refusal) => refusal switch
    {
        InvalidState => "invalid_state",
        Invalid => "invalid",
        _ => "no_target",
    };

    private static string Describe(Failure refusal) => refusal switch
    {
        InvalidState s => s.Detail,
        Invalid i => i.Detail,
        Conflict c => c.Detail,
        _ => refusal.ToString(),
    };

    [LoggerMessage(EventId = 1250, Level = LogLevel.Information, Message = "Migrating VM {VmId} ({Mode}) from {Source} to {Target}, {Storage} storage")]
    private partial void LogStarted(Guid vmId, string mode, string source, string target, string storage);

    [LoggerMessage(EventId = 1251, Level = LogLevel.Information, Message = "Migrated VM {VmId} from {Source} to {Target} in {WallMs} ms (downtime {DowntimeMs} ms)")]
    private partial void LogMoved(Guid vmId, string source, string target, long wallMs, long? downtimeMs);

    [LoggerMessage(EventId = 1252, Level = LogLevel.Warning, Message = "Migration of VM {VmId} from {Source} to {Target} failed ({End}): {Error}")]
    private partial void LogFailed(Guid vmId, string source, string target, string end, string error);

    [LoggerMessage(EventId = 1254, Level = LogLevel.Warning, Message = "VM {VmId} migrated, but the target could not say the downtime: {Error}")]
    private partial void LogDowntimeUnreadable(Guid vmId, string error);

    [LoggerMessage(EventId = 1253, Level = LogLevel.Debug, Message = "Could not read the migration progress of VM {VmId}: {Error}")]
    private partial void LogProgressUnreadable(Guid vmId, string error);
}
