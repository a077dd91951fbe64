namespace Limen.Data;

/// <summary>An internal qcow2 snapshot of a VM, named in libvirt by <see cref="LibvirtName"/> (never by user text).</summary>
public sealed class VmSnapshot
{
    public Guid Id { get; set; }
    public Guid VmId { get; set; }
    public required string Name { get; set; }
    public string? Description { get; set; }
    /// <summary>Whether the running VM's RAM was captured, so revert resumes it where it was.</summary>
    public bool IncludeMemory { get; set; }
    /// <summary>The VM's state when the snapshot was taken (running, paused, stopped).</summary>
    public required string VmState { get; set; }
    /// <summary>ready, or the operation under way (creating, reverting, deleting); see SnapshotStates.</summary>
    public required string State { get; set; }
    public DateTimeOffset CreatedAt { get; set; }

    public string LibvirtName => "limen-" + Id.ToString("N");
}
