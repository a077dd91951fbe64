using System.Diagnostics;

namespace Limen.Tests.Infrastructure;

/// <summary>A small tmpfs of its own, so a test can fill a file system for real without touching the host's disks.</summary>
public sealed class TmpfsMount : IAsyncDisposable
{
    private TmpfsMount(string path)
    {
        Path = path;
    }

    public string Path { get; }

    public static async Task<TmpfsMount> MountAsync(int sizeMiB)
    {
        var path = Directory.CreateTempSubdirectory("limen-tmpfs-").FullName;
        try
        {
            await RunAsync("mount", "-t", "tmpfs", "-o", $"size={sizeMiB}m,mode=0755", "tmpfs", path);
        }
        catch
        {
            Directory.Delete(path);
            throw;
        }

        return new TmpfsMount(path);
    }

    /// <summary>Writes <paramref name="mebibytes"/> MiB into <paramref name="name"/> (real pages: tmpfs has no holes to cheat with).</summary>
    public async Task FillAsync(string name, int mebibytes)
    {
        var block = new byte[1024 * 1024];
        Random.Shared.NextBytes(block);
        await using var file = File.Create(System.IO.Path.Combine(Path, name));
        for (var i = 0; i < mebibytes; i++)
        {
            await file.WriteAsync(block);
        }
    }

    public void Remove(string name) => File.Delete(System.IO.Path.Combine(Path, name));

    public async ValueTask DisposeAsync()
    {
        await RunAsync("umount", Path);
        Directory.Delete(Path);
    }

    private static async Task RunAsync(string file, params string[] args)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} exited {process.ExitCode}: {await stderr}");
        }
    }
}
