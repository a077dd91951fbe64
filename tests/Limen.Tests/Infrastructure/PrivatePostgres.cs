
namespace Limen.Tests.Infrastructure;

/// <summary>
/// A throwaway PostgreSQL cluster of its own (initdb in a temp folder, a free loopback port), for
/// tests that stop the database for real without disturbing the other tests' shared server. It can
/// get a streaming standby (<see cref="StartStandbyAsync"/>) on a port of its own, to fail over to.
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

    /// <summary>
    /// A streaming standby of this cluster: pg_basebackup -R from it into a folder of its own, started
    /// on a free loopback port (read-only until <see cref="PromoteAsync"/>). Synchronous replication
    /// (the default) makes this primary wait, on every commit, until the standby has flushed it — so a
    /// commit acknowledged to a client is on both and survives the switch; asynchronous replication can
    /// lose the last commits when the standby is promoted.
    /// </summary>
    public async Task<PrivatePostgres> StartStandbyAsync(bool synchronous = true)
    {
        var root = Directory.CreateTempSubdirectory("limen-test-pg-standby-").FullName;
        File.SetUnixFileMode(root, (UnixFileMode)Convert.ToInt32("755", 8));
        await ExternalProcess.RunAsync("chown", "postgres:postgres", root);
        var standbyDir = Path.Combine(root, "data");
        var standby = new PrivatePostgres(standbyDir, bin, Ports.Free(), Password);
        try
        {
            // -R writes standby.signal and primary_conninfo (with this connection's password); -X stream
            // copies the WAL written meanwhile. The standby's own postgresql.auto.conf is the primary's as
            // of now, i.e. without synchronous_standby_names: a promoted standby alone must not wait for a standby.
            await ExternalProcess.RunAsync("runuser", "-u", "postgres", "--", bin + "/pg_basebackup", "-D", standbyDir, "-R", "-X", "stream",
                "-c", "fast", "-d", $"host=127.0.0.1 port={Port} user=postgres password={Password}");
            await standby.StartAgainAsync();
            if (synchronous)
            {
                await ExecuteAsync("ALTER SYSTEM SET synchronous_standby_names = '*'");
                await ExecuteAsync("SELECT pg_reload_conf()");
            }

            await WaitForReplicationAsync(synchronous ? "sync" : "async");
            return standby;
        }
        catch
        {
            await standby.DisposeAsync();
            throw;
        }
    }

    /// <summary>Ends recovery: the standby becomes a primary that takes writes (pg_ctl promote, waiting until it does).</summary>
    public Task PromoteAsync() => ExternalProcess.RunAsync("runuser", "-u", "postgres", "--", bin + "/pg_ctl", "-D", dataDir, "-w", "promote");

    /// <summary>
    /// Npgsql's multi-host form for a primary and its standby: both hosts, and only a primary will do
    /// (`Target Session Attributes=primary`), as docs/operations.md tells operators to write it.
    /// </summary>
    public static string MultiHostConnectionString(PrivatePostgres primary, PrivatePostgres standby, string database = "postgres") =>
        $"Host=127.0.0.1:{primary.Port},127.0.0.1:{standby.Port};Username=postgres;Password={primary.Password};Database={database};Timeout=3;Target Session Attributes=primary";

    public async Task ExecuteAsync(string sql)
    {
        await using var connection = new Npgsql.NpgsqlConnection(ConnectionString());
        await connection.OpenAsync();
        await using var command = new Npgsql.NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>Waits until a standby streams from this primary with the given sync_state (pg_stat_replication).</summary>
    private async Task WaitForReplicationAsync(string syncState)
    {
        await using var connection = new Npgsql.NpgsqlConnection(ConnectionString());
        await connection.OpenAsync();
        for (var attempt = 0; ; attempt++)
        {
            await using var command = new Npgsql.NpgsqlCommand("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND sync_state = $1", connection)
            {
                Parameters = { new() { Value = syncState } },
            };
            if ((long)(await command.ExecuteScalarAsync())! > 0)
            {
                return;
            }

            Assert.True(attempt < 300, $"no {syncState} standby streams from port {Port} after 30 s");
            await Task.Delay(100);
        }
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
