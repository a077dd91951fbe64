
namespace Limen.Tests.Infrastructure;

/// <summary>
/// A throwaway PostgreSQL cluster of its own (initdb in a temp folder, a free loopback port), for
/// tests that stop the database for real without disturbing the other tests' shared server.
/// </summary>
public sealed class PrivatePostgres : IAsyncDisposable
{
    private readonly string dataDir;
    private readonly string bin;

    private PrivatePostgres(string dataDir, string bin, int port, string password)
    {
        this.dataDir = dataDir;
        this.bin = bin;
        Port = port;
        Password = password;
    }

    public int Port { get; }
    public string Password { get; }

    public string ConnectionString(string database = "postgres") =>
        $"Host=127.0.0.1;Port={Port};Username=postgres;Password={Password};Database={database};Timeout=3";

    public static async Task<PrivatePostgres> StartAsync()
    {
        var bin = Directory.GetDirectories("/usr/lib/postgresql").OrderBy(d => int.Parse(Path.GetFileName(d), System.Globalization.CultureInfo.InvariantCulture)).Last() + "/bin";
        var root = Directory.CreateTempSubdirectory("limen-test-pg-").FullName;
        File.SetUnixFileMode(root, (UnixFileMode)Convert.ToInt32("755", 8));
        var dataDir = Path.Combine(root, "data");
        var password = Guid.NewGuid().ToString("N");
        var passwordFile = Path.Combine(root, "pw");
        await File.WriteAllTextAsync(passwordFile, password);
        await ExternalProcess.RunAsync("chown", "-R", "postgres:postgres", root);
        await ExternalProcess.RunAsync("runuser", "-u", "postgres", "--", bin + "/initdb", "-D", dataDir, "-U", "postgres",
            "--auth=scram-sha-256", "--pwfile=" + passwordFile, "-E", "UTF8");
        var cluster = new PrivatePostgres(dataDir, bin, Ports.Free(), password);
        await cluster.StartAgainAsync();
        return cluster;
    }

    public Task StartAgainAsync() => ExternalProcess.RunAsync("runuser", "-u", "postgres", "--", bin + "/pg_ctl", "-D", dataDir, "-w", "-l", dataDir + "/log",
        "-o", $"-p {Port} -k {dataDir} -c listen_addresses=127.0.0.1", "start");

    public Task StopAsync() => ExternalProcess.RunAsync("runuser", "-u", "postgres", "--", bin + "/pg_ctl", "-D", dataDir, "-w", "-m", "fast", "stop");

    public async ValueTask DisposeAsync()
    {
        // Stop it if a test left it running; an "is not running" answer is fine here.
        await using (var stop = ExternalProcess.Start("runuser", "-u", "postgres", "--", bin + "/pg_ctl", "-D", dataDir, "-w", "-m", "fast", "stop"))
        {
            await stop.WaitForExitAsync(TimeSpan.FromMinutes(1));
        }

        Directory.Delete(Path.GetDirectoryName(dataDir)!, recursive: true);
    }
}
