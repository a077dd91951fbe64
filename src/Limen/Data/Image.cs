namespace Limen.Data;

public static class ImageKinds
{
    public const string Disk = "disk";
    public const string Iso = "iso";
}

/// <summary>A base disk or an installer ISO in the image directory. Clients name images by id only.</summary>
public sealed class Image
{
    public Guid Id { get; set; }
    public required string Name { get; set; }
    public required string Kind { get; set; }
    /// <summary>qcow2, raw or iso: the format qemu-img reports, recorded so overlays always name it (-F).</summary>
    public required string Format { get; set; }
    /// <summary>File name inside the image directory; never a client-supplied path.</summary>
    public required string FileName { get; set; }
    public long SizeBytes { get; set; }
    public long VirtualSizeBytes { get; set; }
    public required string Sha256 { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}
