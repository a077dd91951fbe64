namespace Limen.Features.Images;

public sealed class ImageOptions
{
    public const string Section = "Limen:Images";

    /// <summary>The only folder images are registered from and uploaded to; default &lt;state&gt;/images.</summary>
    public string? Dir { get; set; }

    public long MaxUploadBytes { get; set; } = 8L * 1024 * 1024 * 1024;
}
