using Limen.Libvirt;

namespace Limen.Tests.Infrastructure;

/// <summary>
/// A libvirtd of the test's own, standing in for a second hypervisor host: a session daemon run as
/// `nobody` with every folder (and its socket) under a /tmp/limen-test-* directory, so killing it
/// touches nothing else. Its test driver, reached through the socket
/// (test+unix:///default?socket=…), keeps one state for every connection, like a real host does.
/// </summary>
public sealed class PrivateLibvirtd : IAsyncDisposable
{
    private readonly string root;
    private ExternalProcess? daemon;

    private PrivateLibvirtd(string root)
    {
        this.root = root;
    }

    public string Uri => $"test+unix:///default?socket={Path.Combine(root, "run", "libvirt", "libvirt-sock")}";

    public static async Task<PrivateLibvirtd> StartAsync()
    {
        var root = Directory.CreateTempSubdirectory("limen-test-libvirtd-").FullName;
        // The daemon runs as nobody and creates its folders in here.
        File.SetUnixFileMode(root, (UnixFileMode)Convert.ToInt32("777", 8));
        var started = new PrivateLibvirtd(root);
        await started.RestartAsync();
        return started;
    }

    /// <summary>SIGKILL, as a crash of the host's daemon would be.</summary>
    public async Task KillAsync()
    {
        if (daemon is not null)
        {
            await daemon.DisposeAsync();
            daemon = null;
        }
    }

    /// <summary>Starts the daemon (again: its test driver starts from its default state) and waits until it answers.</summary>
    public async Task RestartAsync()
    {
        await KillAsync();
        var home = Path.Combine(root, "home");
        daemon = ExternalProcess.Start(new Dictionary<string, string?>
        {
            ["HOME"] = home,
            ["XDG_RUNTIME_DIR"] = Path.Combine(root, "run"),
            ["XDG_CONFIG_HOME"] = Path.Combine(home, ".config"),
            ["XDG_CACHE_HOME"] = Path.Combine(home, ".cache"),
        }, "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "libvirtd");
        await Eventually.WaitAsync(() => Task.FromResult(Answers()), TimeSpan.FromSeconds(30), "the private libvirtd to answer",
            () => daemon.Output);
    }

    private bool Answers()
    {
        try
        {
            using var connection = LibvirtConnection.Open(Uri);
            return connection.IsAlive;
        }
        catch (LibvirtException)
        {
            return false;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        Directory.Delete(root, recursive: true);
    }
}
