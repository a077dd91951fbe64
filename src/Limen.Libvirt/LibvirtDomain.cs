using System.Runtime.InteropServices;

namespace Limen.Libvirt;

/// <summary>
/// A libvirt domain (virDomainPtr). UUID and name are read once: they identify the object this
/// handle points to and cannot change under it. Every other member asks libvirt, so the wrapper is
/// safe to share between threads.
/// </summary>
public sealed unsafe class LibvirtDomain : IDisposable
{
    private readonly DomainHandle handle;

    internal LibvirtDomain(DomainHandle handle)
    {
        this.handle = handle;
        byte* uuid = stackalloc byte[16];
        Native.Check(NativeMethods.virDomainGetUUID(handle, uuid));
        Uuid = Native.ToGuid(uuid);
        Name = Native.CopyString(NativeMethods.virDomainGetName(handle));
    }

    public Guid Uuid { get; }

    public string Name { get; }

    internal DomainHandle Handle => handle;

    /// <summary>Starts the defined domain (virDomainCreate).</summary>
    public void Create() => Native.Check(NativeMethods.virDomainCreate(handle));

    /// <summary>Asks the guest to shut down (ACPI power button by default) and returns at once.</summary>
    public void Shutdown(DomainShutdownFlags flags = DomainShutdownFlags.Default)
        => Native.Check(NativeMethods.virDomainShutdownFlags(handle, (uint)flags));

    /// <summary>Stops the domain immediately, like pulling the power cord.</summary>
    public void Destroy(DomainDestroyFlags flags = DomainDestroyFlags.Default)
        => Native.Check(NativeMethods.virDomainDestroyFlags(handle, (uint)flags));

    /// <summary>Asks the guest to reboot. For QEMU without an agent this is an ACPI shutdown that libvirt turns into a reset.</summary>
    public void Reboot(DomainRebootFlags flags = DomainRebootFlags.Default)
        => Native.Check(NativeMethods.virDomainReboot(handle, (uint)flags));

    public void Suspend() => Native.Check(NativeMethods.virDomainSuspend(handle));

    public void Resume() => Native.Check(NativeMethods.virDomainResume(handle));

    /// <summary>
    /// Removes the persistent definition. A running domain keeps running as a transient one until it
    /// stops. Domains with snapshots need <see cref="DomainUndefineFlags.SnapshotsMetadata"/>.
    /// </summary>
    public void Undefine(DomainUndefineFlags flags = DomainUndefineFlags.None)
        => Native.Check(NativeMethods.virDomainUndefineFlags(handle, (uint)flags));

    /// <summary>The state and its reason (a virDomain*Reason value that depends on the state).</summary>
    public (DomainState State, int Reason) GetState()
    {
        Native.Check(NativeMethods.virDomainGetState(handle, out var state, out var reason, 0));
        return ((DomainState)state, reason);
    }

    public DomainInfo GetInfo()
    {
        Native.Check(NativeMethods.virDomainGetInfo(handle, out var info));
        return new DomainInfo((DomainState)info.State, info.MaxMem.Value, info.Memory.Value, info.NrVirtCpu, info.CpuTime);
    }

    public string GetXmlDesc(DomainXmlFlags flags = DomainXmlFlags.None)
        => Native.TakeString(NativeMethods.virDomainGetXMLDesc(handle, (uint)flags));

    public bool IsActive => Native.Check(NativeMethods.virDomainIsActive(handle)) == 1;

    /// <summary>Statistics of this domain (virDomainListGetStats with one domain).</summary>
    public DomainStats GetStats(DomainStatsTypes types = DomainStatsTypes.Default)
    {
        var success = false;
        handle.DangerousAddRef(ref success);
        try
        {
            // NULL-terminated array of virDomainPtr
            nint* domains = stackalloc nint[2] { handle.DangerousGetHandle(), 0 };
            var count = Native.Check(NativeMethods.virDomainListGetStats(domains, (uint)types, out var records, 0));
            return DomainStats.FromRecords(records, count).Single();
        }
        finally
        {
            handle.DangerousRelease();
        }
    }

    /// <summary>
    /// Live-migrates (or, with <see cref="MigrationFlags.Offline"/>, moves) the domain to
    /// <paramref name="destination"/> with virDomainMigrate3 in direct mode: this process drives the
    /// migration over both connections, so the hosts need not reach each other's libvirtd, only the
    /// destination's QEMU port (<see cref="MigrationParameters.MigrateUri"/>). Blocks until the
    /// migration ended; <see cref="AbortJob"/> from another thread cancels it.
    /// </summary>
    /// <returns>The domain on the destination (dispose it). This handle keeps pointing at the source's domain.</returns>
    /// <exception cref="LibvirtException">The migration was refused, failed or was aborted; the guest then still runs on the source.</exception>
    public LibvirtDomain MigrateTo(LibvirtConnection destination, MigrationParameters parameters, MigrationFlags flags)
    {
        ArgumentNullException.ThrowIfNull(destination);
        ArgumentNullException.ThrowIfNull(parameters);
        using var typed = parameters.ToTypedParameters();
        return new LibvirtDomain(Native.Check(NativeMethods.virDomainMigrate3(handle, destination.Handle, typed.Items, (uint)typed.Count, (uint)flags)));
    }

    /// <summary>
    /// Migrates the domain with virDomainMigrateToURI3. With <see cref="MigrationFlags.PeerToPeer"/>
    /// (the mode this is for) the source libvirtd connects to <paramref name="destinationUri"/> itself,
    /// so that URI must be one the source host can reach (e.g. <c>qemu+tcp://127.0.0.3/system</c>).
    /// Blocks until the migration ended.
    /// </summary>
    /// <exception cref="LibvirtException">The migration was refused, failed or was aborted.</exception>
    public void MigrateToUri(string destinationUri, MigrationParameters parameters, MigrationFlags flags)
    {
        ArgumentException.ThrowIfNullOrEmpty(destinationUri);
        ArgumentNullException.ThrowIfNull(parameters);
        using var typed = parameters.ToTypedParameters();
        Native.Check(NativeMethods.virDomainMigrateToURI3(handle, destinationUri, typed.Items, (uint)typed.Count, (uint)flags));
    }

    /// <summary>
    /// Progress of the domain's running job (virDomainGetJobStats), e.g. an outgoing migration; Type
    /// <see cref="DomainJobType.None"/> when there is none. With <paramref name="completed"/> the
    /// statistics of the last completed job instead (on a migration's destination: DowntimeMs);
    /// libvirt hands those out once.
    /// </summary>
    public DomainJobInfo GetJobStats(bool completed = false)
    {
        const uint StatsCompleted = 1; // VIR_DOMAIN_JOB_STATS_COMPLETED
        Native.Check(NativeMethods.virDomainGetJobStats(handle, out var type, out var parameters, out var count, completed ? StatsCompleted : 0));
        try
        {
            return DomainJobInfo.From((DomainJobType)type, TypedParameters.Read((VirTypedParameter*)parameters, count));
        }
        finally
        {
            NativeMethods.virTypedParamsFree(parameters, count);
        }
    }

    /// <summary>Cancels the domain's running job (virDomainAbortJob); the job's own call then fails with <see cref="LibvirtErrorCode.OperationAborted"/>.</summary>
    /// <exception cref="LibvirtException">No job runs (<see cref="LibvirtErrorCode.OperationInvalid"/>) or it cannot be aborted.</exception>
    public void AbortJob() => Native.Check(NativeMethods.virDomainAbortJob(handle));

    /// <summary>Creates a snapshot from snapshot XML (<c>&lt;domainsnapshot&gt;</c>; an empty one lets libvirt pick the name).</summary>
    public LibvirtDomainSnapshot CreateSnapshotXml(string xml, SnapshotCreateFlags flags = SnapshotCreateFlags.None)
    {
        ArgumentNullException.ThrowIfNull(xml);
        return new LibvirtDomainSnapshot(Native.Check(NativeMethods.virDomainSnapshotCreateXML(handle, xml, (uint)flags)), Uuid);
    }

    /// <summary>All snapshots of this domain. Dispose each one.</summary>
    public IReadOnlyList<LibvirtDomainSnapshot> ListAllSnapshots()
    {
        var count = Native.Check(NativeMethods.virDomainListAllSnapshots(handle, out var array, 0));
        try
        {
            var handles = new SnapshotHandle[count];
            for (var i = 0; i < count; i++)
            {
                handles[i] = new SnapshotHandle(array[i]);
            }
            return handles.Select(h => new LibvirtDomainSnapshot(h, Uuid)).ToArray();
        }
        finally
        {
            NativeMemory.Free(array);
        }
    }

    /// <summary>The snapshot with this name, or null when the domain has none by that name.</summary>
    public LibvirtDomainSnapshot? LookupSnapshotByName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var found = NativeMethods.virDomainSnapshotLookupByName(handle, name, 0);
        if (!found.IsInvalid)
        {
            return new LibvirtDomainSnapshot(found, Uuid);
        }
        var error = Native.LastError(nameof(NativeMethods.virDomainSnapshotLookupByName));
        found.Dispose();
        return error.Code == LibvirtErrorCode.NoDomainSnapshot ? null : throw error;
    }

    /// <summary>
    /// Reverts the domain to <paramref name="snapshot"/>. Without Running/Paused flags the domain ends
    /// in the state the snapshot recorded.
    /// </summary>
    public void RevertToSnapshot(LibvirtDomainSnapshot snapshot, SnapshotRevertFlags flags = SnapshotRevertFlags.None)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        if (snapshot.DomainUuid != Uuid)
        {
            throw new ArgumentException($"snapshot {snapshot.Name} belongs to domain {snapshot.DomainUuid}, not {Uuid}", nameof(snapshot));
        }
        Native.Check(NativeMethods.virDomainRevertToSnapshot(snapshot.Handle, (uint)flags));
    }

    public override string ToString() => $"{Name} ({Uuid})";

    public void Dispose() => handle.Dispose();
}
