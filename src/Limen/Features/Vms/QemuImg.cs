using System.Diagnostics;
using System.Text.Json;

namespace Limen.Features.Vms;

public sealed class QemuImgException(string message) : Exception(message);

/// <summary>
/// qemu-img for what libvirt's API offers no call for here: qcow2 overlays with a recorded backing
/// format, blank disks, and reading an image's format and virtual size.
/// </summary>
public static class QemuImg
{
    /// <summary>An image's format and size, and the image it is an overlay on (null for a standalone one).</summary>
    public sealed record Info(string Format, long VirtualSizeBytes, string? BackingFile = null, string? BackingFormat = null);

    /// <summary>A qcow2 overlay on <paramref name="backingFile"/>, grown to <paramref name="sizeGb"/> when that is larger.</summary>
    public static Task CreateOverlayAsync(string path, string backingFile, string backingFormat, int sizeGb, CancellationToken cancellationToken) =>
        RunAsync(cancellationToken, "create", "-q", "-f", "qcow2", "-F", backingFormat, "-b", backingFile, path, $"{sizeGb}G");

    public static Task CreateBlankAsync(string path, int sizeGb, CancellationToken cancellationToken) =>
        RunAsync(cancellationToken, "create", "-q", "-f", "qcow2", path, $"{sizeGb}G");

    /// <summary>An empty disk shaped like <paramref name="like"/>: same size, on the same backing image — what a disk copy (a migration's) writes into.</summary>
    public static Task CreateLikeAsync(string path, Info like, CancellationToken cancellationToken) => like.BackingFile is { } backing
        ? RunAsync(cancellationToken, "create", "-q", "-f", "qcow2", "-F", like.BackingFormat ?? "raw", "-b", backing, path, like.VirtualSizeBytes.ToString(System.Globalization.CultureInfo.InvariantCulture))
        : RunAsync(cancellationToken, "create", "-q", "-f", "qcow2", path, like.VirtualSizeBytes.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>Reads an image's header; -U also while a running QEMU holds the image's lock.</summary>
    public static async Task<Info> InfoAsync(string path, CancellationToken cancellationToken)
    {
        var json = await RunAsync(cancellationToken, "info", "--output=json", "-U", path);
        using var document = JsonDocument.Parse(json);
        var root = document.RootElement;
        string? Text(string name) => root.TryGetProperty(name, out var value) ? value.GetString() : null;
        return new Info(Text("format")!, root.GetProperty("virtual-size").GetInt64(),
            Text("full-backing-filename") ?? Text("backing-filename"), Text("backing-filename-format"));
    }

    private static async Task<string> RunAsync(CancellationToken cancellationToken, params string[] args)
    {
        var start = new ProcessStartInfo("qemu-img") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start) ?? throw new QemuImgException("qemu-img could not be started");
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken);
        if (process.ExitCode != 0)
        {
            throw new QemuImgException($"qemu-img {args[0]} failed: {(await stderr).Trim()}");
        }

        return await stdout;
    }
}
