namespace Limen.Data;

public sealed class Vm
{
    /// <summary>Also the libvirt domain's UUID.</summary>
    public Guid Id { get; set; }
    public required string Name { get; set; }
    public Guid OwnerId { get; set; }
    public Guid HostId { get; set; }
    /// <summary>The base disk image, or the ISO for a blank-disk install.</summary>
    public Guid? ImageId { get; set; }
    /// <summary>An ISO attached as CD-ROM, if any.</summary>
    public Guid? CdromImageId { get; set; }
    /// <summary>Boot devices in order, comma-separated libvirt names ("hd", "cdrom").</summary>
    public required string BootOrder { get; set; }
    public int Vcpus { get; set; }
    public int MemoryMb { get; set; }
    public int DiskGb { get; set; }
    public required string State { get; set; }
    /// <summary>Why the VM is in error or missing; null otherwise.</summary>
    public string? StateReason { get; set; }
    public required string MacAddress { get; set; }
    /// <summary>Two VMs of one owner with the same group never share a host; null = no group.</summary>
    public string? AntiAffinityGroup { get; set; }
    /// <summary>Why placement chose the VM's host (names hosts: shown to admins only).</summary>
    public string? PlacementReason { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
}
