using System.Security.Cryptography;
using Limen.Data;
using Limen.Features.Vms;
using Limen.Hosting;
using Microsoft.Extensions.Options;

namespace Limen.Features.Images;

/// <summary>The image directory: the only place image files come from. Requests name images by id; file names are checked here.</summary>
public sealed class ImageStore(IOptions<ImageOptions> options, IOptions<LimenOptions> limen)
{
    public string Directory { get; } = StateDirectory.Sub(limen.Value.StateDir, options.Value.Dir, "images");

    public long MaxUploadBytes => options.Value.MaxUploadBytes;

    public string PathOf(Image image) => Path.Combine(Directory, image.FileName);

    /// <summary>A bare file name inside the image directory, or null: no separators, no dot-files, no links out.</summary>
    public string? Resolve(string fileName)
    {
        if (fileName.Length is 0 or > 200 || fileName.StartsWith('.') || fileName.Contains('/') || fileName.Contains('\\')
            || fileName.Any(char.IsControl))
        {
            return null;
        }

        var path = Path.Combine(Directory, fileName);
        var info = new FileInfo(path);
        return info.Exists && info.LinkTarget is null ? path : null;
    }

    /// <summary>Reads what the database records about a file: its format (qemu-img), sizes and sha256.</summary>
    public static async Task<(string Format, long Size, long VirtualSize, string Sha256)> DescribeAsync(string path, CancellationToken cancellationToken)
    {
        var info = await QemuImg.InfoAsync(path, cancellationToken);
        await using var stream = File.OpenRead(path);
        var hash = Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, cancellationToken));
        return (info.Format, new FileInfo(path).Length, info.VirtualSizeBytes, hash);
    }

    public static string? KindProblem(string kind, string format) => (kind, format) switch
    {
        (ImageKinds.Disk, "qcow2" or "raw") => null,
        (ImageKinds.Iso, "raw") => null,
        (ImageKinds.Disk or ImageKinds.Iso, _) => $"a {kind} image cannot be in {format} format.",
        _ => "kind must be 'disk' or 'iso'.",
    };
}
