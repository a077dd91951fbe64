using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

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
        await RunAsync("chown", "-R", "postgres:postgres", root);
        await RunAsync("runuser", "-u", "postgres", "--", bin + "/initdb", "-D", dataDir, "-U", "postgres",
            "--auth=scram-sha-256", "--pwfile=" + passwordFile, "-E", "UTF8");
        var cluster = new PrivatePostgres(dataDir, bin, FreePort(), password);
        await cluster.StartAgainAsync();
        return cluster;
    }

    public Task StartAgainAsync() => RunAsync("runuser", "-u", "postgres", "--", bin + "/pg_ctl", "-D", dataDir, "-w", "-l", dataDir + "/log",
        "-o", $"-p {Port} -k {dataDir} -c listen_addresses=127.0.0.1", "start");

    public Task StopAsync() => RunAsync("runuser", "-u", "postgres", "--", bin + "/pg_ctl", "-D", dataDir, "-w", "-m", "fast", "stop");

    public async ValueTask DisposeAsync()
    {
        try
        {
            await StopAsync();
        }
        catch (InvalidOperationException)
        {
            // already stopped
        }

        Directory.Delete(Path.GetDirectoryName(dataDir)!, recursive: true);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static async Task RunAsync(string file, params string[] args)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} exited {process.ExitCode}: {await stdout}{await stderr}");
        }
    }
}
