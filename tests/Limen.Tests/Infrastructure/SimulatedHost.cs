using System.Diagnostics;

namespace Limen.Tests.Infrastructure;

/// <summary>
/// Hypervisor host <see cref="Number"/> (2..9) simulated on this machine by scripts/simhost.sh: a
/// libvirtd (with its own virtlogd) in a mount + UTS namespace with private libvirt folders,
/// reachable as qemu+tcp://127.0.0.N/system and named simhostN. Every host sees the same file system
/// outside the libvirt folders, so a disk in any host's <see cref="DiskDir"/> is shared storage for
/// live migration. Hosts get their own host UUID, migration address and port ranges, and no per-VM
/// cgroups. The machine's libvirtd (qemu:///system) is not touched.
/// </summary>
/// <remarks>
/// Host N has fixed addresses, so one process at a time may run it: an flock on
/// /tmp/limen-test-simhost-N.lock (released by the kernel when the holder dies) makes a second
/// process wait. What a killed run left behind is brought down by the next <see cref="StartAsync"/>
/// of that host, and by ./test.sh's sweep. Linked into every test project that uses it, so it
/// depends on nothing but the BCL.
/// </remarks>
public sealed class SimulatedHost : IAsyncDisposable
{
    private static readonly TimeSpan LockWait = TimeSpan.FromMinutes(5);
    private readonly FileStream hostLock;
    private bool disposed;

    private SimulatedHost(int number, FileStream hostLock)
    {
        Number = number;
        this.hostLock = hostLock;
    }

    public int Number { get; }

    /// <summary>The loopback address everything of this host listens on: libvirtd, VNC, incoming migration.</summary>
    public string Address => $"127.0.0.{Number}";

    public string Uri => $"qemu+tcp://{Address}/system";

    /// <summary>What <c>virConnectGetHostname</c> answers on <see cref="Uri"/>.</summary>
    public string Hostname => $"simhost{Number}";

    /// <summary>This host's folder (removed by <see cref="DisposeAsync"/>).</summary>
    public string Directory => $"/tmp/limen-test-simhost-{Number}";

    /// <summary>A folder for this host's VM disks, reachable by QEMU (libvirt-qemu) on every host.</summary>
    public string DiskDir => Path.Combine(Directory, "disks");

    /// <summary>This host's libvirtd log (its private /var/log/libvirt/libvirtd.log), for failure messages.</summary>
    public string LogPath => Path.Combine(Directory, "root", "log", "libvirtd.log");

    /// <summary>Brings host <paramref name="number"/> up (~0.2 s plus the wait for its lock).</summary>
    public static async Task<SimulatedHost> StartAsync(int number)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(number, 2);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(number, 9);
        var hostLock = await LockAsync(number);
        var host = new SimulatedHost(number, hostLock);
        try
        {
            await host.ScriptAsync("up");
            return host;
        }
        catch
        {
            await host.DisposeAsync();
            throw;
        }
    }

    /// <summary>SIGKILLs its libvirtd: the host goes away (connections break, nothing answers on <see cref="Uri"/>). Its guests keep running.</summary>
    public Task KillAsync() => ScriptAsync("kill");

    /// <summary>Starts its libvirtd again (stopping it first if it runs); it reconnects to the guests still running.</summary>
    public Task RestartAsync() => ScriptAsync("restart");

    /// <summary>Destroys and undefines its domains, stops its QEMUs and daemons, removes its folder.</summary>
    public async ValueTask DisposeAsync()
    {
        if (disposed)
        {
            return;
        }

        disposed = true;
        try
        {
            await ScriptAsync("down");
        }
        finally
        {
            await hostLock.DisposeAsync();
        }
    }

    public override string ToString() => $"host{Number} ({Uri})";

    // .NET takes FileShare.None as an exclusive flock on Unix.
    private static async Task<FileStream> LockAsync(int number)
    {
        var path = $"/tmp/limen-test-simhost-{number}.lock";
        var waited = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (waited.Elapsed < LockWait)
            {
                await Task.Delay(500);
            }
        }
    }

    private async Task ScriptAsync(string command)
    {
        var start = new ProcessStartInfo(Script) { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(command);
        start.ArgumentList.Add(Number.ToString(System.Globalization.CultureInfo.InvariantCulture));
        using var process = Process.Start(start)!;
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var output = process.StandardOutput.ReadToEndAsync(timeout.Token);
        var error = process.StandardError.ReadToEndAsync(timeout.Token);
        await process.WaitForExitAsync(timeout.Token);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"simhost.sh {command} {Number} exited {process.ExitCode}:\n{await output}{await error}");
        }
    }

    private static string Script { get; } = FindScript();

    private static string FindScript()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var script = Path.Combine(dir.FullName, "scripts", "simhost.sh");
            if (File.Exists(Path.Combine(dir.FullName, "Limen.slnx")) && File.Exists(script))
            {
                return script;
            }
        }

        throw new InvalidOperationException("scripts/simhost.sh not found above " + AppContext.BaseDirectory);
    }
}
