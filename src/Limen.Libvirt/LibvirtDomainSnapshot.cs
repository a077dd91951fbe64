namespace Limen.Libvirt;

/// <summary>virDomainSnapshotCreateFlags.</summary>
[Flags]
public enum SnapshotCreateFlags : uint
{
    None = 0,
    Redefine = 1 << 0,
    Current = 1 << 1,
    NoMetadata = 1 << 2,
    Halt = 1 << 3,
    DiskOnly = 1 << 4,
    ReuseExternal = 1 << 5,
    Quiesce = 1 << 6,
    Atomic = 1 << 7,
    Live = 1 << 8,
    Validate = 1 << 9,
}

/// <summary>virDomainSnapshotRevertFlags.</summary>
[Flags]
public enum SnapshotRevertFlags : uint
{
    None = 0,
    Running = 1 << 0,
    Paused = 1 << 1,
    /// <summary>Allow risky reverts (e.g. to a running snapshot while the domain runs with another config).</summary>
    Force = 1 << 2,
}

/// <summary>virDomainSnapshotDeleteFlags.</summary>
[Flags]
public enum SnapshotDeleteFlags : uint
{
    None = 0,
    Children = 1 << 0,
    MetadataOnly = 1 << 1,
    ChildrenOnly = 1 << 2,
}

/// <summary>A domain snapshot (virDomainSnapshotPtr). Safe to share between threads.</summary>
public sealed class LibvirtDomainSnapshot : IDisposable
{
    private readonly SnapshotHandle handle;

    internal LibvirtDomainSnapshot(SnapshotHandle handle, Guid domainUuid)
    {
        this.handle = handle;
        DomainUuid = domainUuid;
        Name = Native.CopyString(NativeMethods.virDomainSnapshotGetName(handle));
    }

    public string Name { get; }

    /// <summary>UUID of the domain the snapshot belongs to.</summary>
    public Guid DomainUuid { get; }

    internal SnapshotHandle Handle => handle;

    public string GetXmlDesc() => Native.TakeString(NativeMethods.virDomainSnapshotGetXMLDesc(handle, 0));

    /// <summary>Deletes the snapshot (its data and its metadata unless <see cref="SnapshotDeleteFlags.MetadataOnly"/>).</summary>
    public void Delete(SnapshotDeleteFlags flags = SnapshotDeleteFlags.None)
        => Native.Check(NativeMethods.virDomainSnapshotDelete(handle, (uint)flags));

    public override string ToString() => Name;

    public void Dispose() => handle.Dispose();
}
