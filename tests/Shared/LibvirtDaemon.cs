using System.Diagnostics;

namespace Limen.TestSupport;

/// <summary>
/// The machine's libvirtd, for tests that kill it (SIGKILL, as a crash would) and start it again.
/// Such tests run in a collection that runs alone, and call <see cref="EnsureRunningAsync"/> in
/// their cleanup so libvirtd is always left running. Guests survive: QEMU processes are not
/// libvirtd's children, and a new libvirtd reattaches to them. Linked into every test project that
/// needs it.
/// </summary>
public static class LibvirtDaemon
{
    public const string Uri = "qemu:///system";

    private const string PidFile = "/run/libvirtd.pid";

    /// <summary>SIGKILLs the running libvirtd (by the pid it wrote) and waits until the process is gone.</summary>
    public static async Task KillAsync(TimeSpan timeout)
    {
        var pid = int.Parse(File.ReadAllText(PidFile).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        using (var daemon = Process.GetProcessById(pid))
        {
            daemon.Kill(); // SIGKILL on Linux
        }

        await WaitAsync(() => Task.FromResult(!IsRunning(pid)), timeout, $"libvirtd (pid {pid}) to exit");
    }

    /// <summary>Starts virtlogd and libvirtd unless they run, and waits until qemu:///system answers.</summary>
    public static async Task EnsureRunningAsync(TimeSpan timeout)
    {
        if (!IsRunning("virtlogd"))
        {
            await RunAsync("virtlogd", "-d");
        }

        if (!IsRunning("libvirtd"))
        {
            await RunAsync("libvirtd", "-d");
        }

        await WaitAsync(async () => await RunAsync("virsh", "-c", Uri, "version") == 0, timeout, "libvirtd to answer");
    }

    /// <summary>Polls <paramref name="condition"/> every 100 ms; throws naming <paramref name="what"/> once the deadline passes.</summary>
    public static async Task WaitAsync(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var deadline = Stopwatch.StartNew();
        while (!await condition())
        {
            if (deadline.Elapsed > timeout)
            {
                throw new TimeoutException($"Timed out after {timeout.TotalSeconds:0} s waiting for {what}.");
            }

            await Task.Delay(100);
        }
    }

    // A killed daemon can linger as a zombie until init reaps it; that one does not count.
    private static bool IsRunning(string name) => Process.GetProcessesByName(name).Any(p => IsRunning(p.Id));

    // A process reaped or left a zombie is gone for our purposes.
    private static bool IsRunning(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..].FirstOrDefault() != 'Z';
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static async Task<int> RunAsync(string fileName, params string[] args)
    {
        var start = new ProcessStartInfo(fileName) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        // Drain both pipes so a chatty command cannot block on a full one.
        var output = process.StandardOutput.ReadToEndAsync(timeout.Token);
        var error = process.StandardError.ReadToEndAsync(timeout.Token);
        await process.WaitForExitAsync(timeout.Token);
        await Task.WhenAll(output, error);
        return process.ExitCode;
    }
}
