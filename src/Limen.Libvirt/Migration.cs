namespace Limen.Libvirt;

/// <summary>virDomainMigrateFlags (VIR_MIGRATE_*).</summary>
[Flags]
public enum MigrationFlags : uint
{
    None = 0,
    /// <summary>Copy memory while the guest runs; without it the guest is paused for the whole migration.</summary>
    Live = 1 << 0,
    /// <summary>The source libvirtd drives the migration and connects to the destination URI itself (virDomainMigrateToURI3).</summary>
    PeerToPeer = 1 << 1,
    /// <summary>Memory travels through the libvirtd connection instead of a QEMU migration port (needs <see cref="PeerToPeer"/>).</summary>
    Tunnelled = 1 << 2,
    /// <summary>Define the domain persistently on the destination (otherwise it is transient there).</summary>
    PersistDestination = 1 << 3,
    /// <summary>Undefine the domain on the source once it runs on the destination (otherwise it stays, shut off (migrated)).</summary>
    UndefineSource = 1 << 4,
    /// <summary>Leave the domain paused on the destination.</summary>
    Paused = 1 << 5,
    /// <summary>VIR_MIGRATE_NON_SHARED_DISK: copy every disk to the destination's files (which must exist).</summary>
    CopyStorageAll = 1 << 6,
    /// <summary>VIR_MIGRATE_NON_SHARED_INC: copy only the top image of each disk.</summary>
    CopyStorageIncremental = 1 << 7,
    ChangeProtection = 1 << 8,
    /// <summary>Migrate even though libvirt calls it unsafe; libvirt 9.0 calls every local-file-system disk unshared, even when both hosts see the same file.</summary>
    Unsafe = 1 << 9,
    /// <summary>Move only the definition of an inactive domain.</summary>
    Offline = 1 << 10,
    Compressed = 1 << 11,
    AbortOnError = 1 << 12,
    AutoConverge = 1 << 13,
}

/// <summary>The typed parameters of virDomainMigrate3 / virDomainMigrateToURI3; a null member is not passed.</summary>
public sealed record MigrationParameters
{
    /// <summary>VIR_MIGRATE_PARAM_DEST_XML: the domain XML to use on the destination (e.g. other disk paths); from <see cref="DomainXmlFlags.Migratable"/>.</summary>
    public string? DestinationXml { get; init; }

    /// <summary>VIR_MIGRATE_PARAM_DEST_NAME: the domain's name on the destination.</summary>
    public string? DestinationName { get; init; }

    /// <summary>VIR_MIGRATE_PARAM_URI: where QEMU's migration stream goes, e.g. <c>tcp://127.0.0.3</c> (the destination picks the port).</summary>
    public string? MigrateUri { get; init; }

    /// <summary>VIR_MIGRATE_PARAM_LISTEN_ADDRESS: the address the destination's QEMU listens on for the incoming stream.</summary>
    public string? ListenAddress { get; init; }

    /// <summary>VIR_MIGRATE_PARAM_MIGRATE_DISKS: the disks (target devs, e.g. <c>vda</c>) to copy with <see cref="MigrationFlags.CopyStorageAll"/>; all when null.</summary>
    public IReadOnlyList<string>? MigrateDisks { get; init; }

    /// <summary>VIR_MIGRATE_PARAM_BANDWIDTH: at most this many MiB/s; libvirt's default when null or 0.</summary>
    public ulong? BandwidthMiBs { get; init; }

    internal TypedParameterList ToTypedParameters()
    {
        var list = new TypedParameterList();
        try
        {
            AddIfSet(list, "destination_xml", DestinationXml);
            AddIfSet(list, "destination_name", DestinationName);
            AddIfSet(list, "migrate_uri", MigrateUri);
            AddIfSet(list, "listen_address", ListenAddress);
            if (MigrateDisks is not null)
            {
                list.Add("migrate_disks", MigrateDisks);
            }
            if (BandwidthMiBs is { } bandwidth)
            {
                list.Add("bandwidth", bandwidth);
            }
            return list;
        }
        catch
        {
            list.Dispose();
            throw;
        }
    }

    private static void AddIfSet(TypedParameterList list, string name, string? value)
    {
        if (value is not null)
        {
            list.Add(name, value);
        }
    }
}

/// <summary>virDomainJobType.</summary>
public enum DomainJobType
{
    None = 0,
    /// <summary>A job with a known end (DataRemaining counts down to it).</summary>
    Bounded = 1,
    /// <summary>A job without a known end, e.g. a live migration that may never converge.</summary>
    Unbounded = 2,
    Completed = 3,
    Failed = 4,
    Cancelled = 5,
}

/// <summary>
/// virDomainGetJobStats of a domain's running (or, with completed, last completed) job: bytes in total,
/// memory and disk, and the downtime of a completed migration. Null where libvirt did not report the field.
/// </summary>
public sealed record DomainJobInfo(DomainJobType Type, ulong? TimeElapsedMs, ulong? DataTotal, ulong? DataProcessed,
    ulong? DataRemaining, ulong? MemoryTotal, ulong? MemoryProcessed, ulong? MemoryRemaining, ulong? DiskTotal,
    ulong? DiskRemaining, ulong? DowntimeMs)
{
    internal static DomainJobInfo From(DomainJobType type, Dictionary<string, object> values)
    {
        ulong? Number(string key) => TypedParameters.Number(values, key);
        return new DomainJobInfo(type, Number("time_elapsed"), Number("data_total"), Number("data_processed"),
            Number("data_remaining"), Number("memory_total"), Number("memory_processed"), Number("memory_remaining"),
            Number("disk_total"), Number("disk_remaining"), Number("downtime"));
    }
}
