using System.Diagnostics;
using Limen.Libvirt;

namespace Limen.Tests.Infrastructure;

/// <summary>
/// The machine's libvirtd, for the few tests that kill it (they run in the qemu-system collection,
/// one at a time). Killed by the pid in its pid file, never by name; always started again.
/// </summary>
public static class Libvirtd
{
    private const string PidFile = "/run/libvirtd.pid";

    /// <summary>SIGKILL, as a crash would: no chance to close its clients' connections.</summary>
    public static async Task KillAsync()
    {
        var pid = RunningPid(PidFile, "libvirtd") ?? throw new InvalidOperationException("libvirtd is not running");
        using var process = Process.GetProcessById(pid);
        process.Kill();
        await process.WaitForExitAsync();
    }

    /// <summary>Starts virtlogd and libvirtd where they are not running and waits until qemu:///system answers.</summary>
    public static async Task EnsureRunningAsync()
    {
        if (RunningPid("/run/virtlogd.pid", "virtlogd") is null)
        {
            await StartAsync("virtlogd");
        }

        if (RunningPid(PidFile, "libvirtd") is null)
        {
            await StartAsync("libvirtd");
        }

        await Eventually.WaitAsync(() => Task.FromResult(Answers()), TimeSpan.FromSeconds(60), "libvirtd to answer on qemu:///system");
    }

    private static async Task StartAsync(string daemon)
    {
        // Another fault test may start it at the same moment; whoever wins, it runs afterwards.
        await using var start = ExternalProcess.Start(daemon, "-d");
        await start.WaitForExitAsync(TimeSpan.FromSeconds(60));
    }

    private static bool Answers()
    {
        try
        {
            using var connection = LibvirtConnection.Open("qemu:///system");
            return connection.IsAlive;
        }
        catch (LibvirtException)
        {
            return false;
        }
    }

    private static int? RunningPid(string pidFile, string name)
    {
        if (!File.Exists(pidFile) || !int.TryParse(File.ReadAllText(pidFile).Trim(), out var pid))
        {
            return null;
        }

        var comm = $"/proc/{pid}/comm";
        return File.Exists(comm) && File.ReadAllText(comm).Trim() == name ? pid : null;
    }
}
