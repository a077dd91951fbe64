using System.Globalization;
using System.Text;
using Limen.Tests.Infrastructure;

namespace Limen.Tests.Backup;

/// <summary>`limen backup` as an operator runs it: what the archive holds, what it must never hold, and failures.</summary>
public sealed class BackupCommandTests
{
    [Fact]
    public async Task Backup_writes_a_complete_archive_without_secrets_records_the_run_and_moves_the_metric()
    {
        const string webhookToken = "webhook-token-that-must-not-leak";
        await using var server = await LimenTestServer.StartAsync();
        await BackupTestKit.SeedAsync(server);
        Assert.Contains("limen_backup_last_success_timestamp_seconds 0", await server.MetricsAsync(), StringComparison.Ordinal);
        var output = BackupTestKit.TempDir();
        var environment = BackupTestKit.Environment(server.Database.ConnectionString, server.StateDir);
        environment["LIMEN_ADMIN_PASSWORD"] = server.AdminPassword;
        environment["Limen__Alerts__WebhookToken"] = webhookToken;

        var (exitCode, log) = await LimenProcess.RunAsync(environment, "backup", "--output", output);

        Assert.True(exitCode == 0, log);
        // Not a terminal: plain progress lines, one per step.
        Assert.Contains("ok   Dump the database (pg_dump, custom format)", log, StringComparison.Ordinal);
        var archive = Assert.Single(Directory.GetFiles(output));
        Assert.Matches(@"/limen-backup-\d{8}T\d{6}Z\.tar\.gz$", archive);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(archive));

        var dir = BackupTestKit.Extract(archive);
        var manifest = BackupTestKit.Json(Path.Combine(dir, "manifest.json"));
        Assert.Equal("limen-backup", manifest.GetProperty("format").GetString());
        Assert.Equal(1, manifest.GetProperty("format_version").GetInt32());
        Assert.StartsWith("15.", manifest.GetProperty("postgres_version").GetString(), StringComparison.Ordinal);
        Assert.False(string.IsNullOrEmpty(manifest.GetProperty("schema_migration").GetString()));
        Assert.False(string.IsNullOrEmpty(manifest.GetProperty("limen_version").GetString()));
        var counts = manifest.GetProperty("row_counts");
        Assert.Equal(await server.Database.ScalarAsync("SELECT count(*) FROM users"), counts.GetProperty("users").GetInt64());
        Assert.Equal(2, counts.GetProperty("vms").GetInt64());
        foreach (var file in manifest.GetProperty("files").EnumerateArray())
        {
            var path = Path.Combine(dir, file.GetProperty("path").GetString()!);
            Assert.Equal(file.GetProperty("size").GetInt64(), new FileInfo(path).Length);
            Assert.Equal(file.GetProperty("sha256").GetString(), Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(path))));
        }

        foreach (var csv in new[] { "vms", "users", "vm_snapshots", "audit_logs" })
        {
            Assert.True(File.Exists(Path.Combine(dir, "metadata", csv + ".csv")), csv);
        }

        var users = File.ReadAllText(Path.Combine(dir, "metadata", "users.csv"));
        Assert.StartsWith("id,username,role,disabled,created_at,updated_at\n", users, StringComparison.Ordinal);
        Assert.Contains("alice", users, StringComparison.Ordinal);
        Assert.DoesNotContain("AQAAAA", users, StringComparison.Ordinal); // ASP.NET Core Identity hash prefix

        // No secret anywhere in the archive: not the database password, the admin password or a token.
        var dbPassword = new Npgsql.NpgsqlConnectionStringBuilder(server.Database.ConnectionString).Password!;
        foreach (var file in Directory.GetFiles(dir, "*", SearchOption.AllDirectories))
        {
            var text = Encoding.UTF8.GetString(File.ReadAllBytes(file));
            Assert.DoesNotContain(dbPassword, text, StringComparison.Ordinal);
            Assert.DoesNotContain(server.AdminPassword, text, StringComparison.Ordinal);
            Assert.DoesNotContain(webhookToken, text, StringComparison.Ordinal);
        }

        var config = BackupTestKit.Json(Path.Combine(dir, "config", "limen.json"));
        Assert.Equal("[redacted]", config.GetProperty("Limen").GetProperty("AdminPassword").GetString());
        Assert.Equal("[redacted]", config.GetProperty("Limen").GetProperty("Alerts").GetProperty("WebhookToken").GetString());
        Assert.EndsWith("Password=[redacted]", config.GetProperty("ConnectionStrings").GetProperty("Limen").GetString(), StringComparison.Ordinal);
        Assert.Equal("900", config.GetProperty("Limen").GetProperty("Auth").GetProperty("AccessTokenSeconds").GetString());

        // The run is recorded, and the server's gauge follows it at the next scrape.
        var finished = await server.Database.ScalarAsync(
            "SELECT extract(epoch FROM finished_at)::bigint FROM backup_runs WHERE kind = 'backup' AND status = 'succeeded'");
        var metrics = await server.MetricsAsync();
        var gauge = metrics.Split('\n').Single(l => l.StartsWith("limen_backup_last_success_timestamp_seconds ", StringComparison.Ordinal));
        Assert.Equal(finished, (long)double.Parse(gauge.Split(' ')[1], CultureInfo.InvariantCulture), tolerance: 1);
        Assert.Contains("limen_restore_drill_last_success_timestamp_seconds 0", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_domain_xml_of_each_vm_is_archived_and_vms_without_a_domain_are_listed()
    {
        await using var server = await LimenTestServer.StartAsync();
        var seed = await BackupTestKit.SeedAsync(server);
        var result = await BackupTestKit.BackupInProcessAsync(server, BackupTestKit.TempDir());
        var dir = BackupTestKit.Extract(result.ArchivePath);

        foreach (var vm in new[] { seed.RunningVm, seed.StoppedVm })
        {
            var xml = System.Xml.Linq.XDocument.Load(Path.Combine(dir, "domains", $"{vm}.xml"));
            Assert.Equal(vm.ToString(), xml.Root!.Element("uuid")!.Value);
        }

        Assert.Empty(result.Manifest.VmsWithoutDomain);

        // From another process the test driver's domains are not there: the backup still succeeds and says so.
        var output = BackupTestKit.TempDir();
        var (exitCode, log) = await LimenProcess.RunAsync(BackupTestKit.Environment(server.Database.ConnectionString, server.StateDir), "backup", "--output", output);
        Assert.True(exitCode == 0, log);
        var manifest = BackupTestKit.Json(Path.Combine(BackupTestKit.Extract(Directory.GetFiles(output).Single()), "manifest.json"));
        Assert.Equal(2, manifest.GetProperty("vms_without_domain").GetArrayLength());
    }

    [Fact]
    public async Task Keep_removes_only_the_oldest_of_our_own_archives()
    {
        await using var server = await LimenTestServer.StartAsync();
        var output = BackupTestKit.TempDir();
        foreach (var old in new[] { "limen-backup-20200101T000000Z.tar.gz", "limen-backup-20210101T000000Z.tar.gz", "limen-backup-20220101T000000Z.tar.gz" })
        {
            await File.WriteAllTextAsync(Path.Combine(output, old), "old");
        }

        await File.WriteAllTextAsync(Path.Combine(output, "notes.txt"), "not an archive");

        var (exitCode, log) = await LimenProcess.RunAsync(BackupTestKit.Environment(server.Database.ConnectionString, server.StateDir),
            "backup", "--output", output, "--keep", "2");

        Assert.True(exitCode == 0, log);
        var left = Directory.GetFiles(output).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(4 - 2 + 1, left.Count);
        Assert.Contains("limen-backup-20220101T000000Z.tar.gz", left);
        Assert.Contains("notes.txt", left);
        Assert.DoesNotContain("limen-backup-20210101T000000Z.tar.gz", left);

        var (badExit, badLog) = await LimenProcess.RunAsync(BackupTestKit.Environment(server.Database.ConnectionString, server.StateDir),
            "backup", "--output", output, "--keep", "0");
        Assert.Equal(2, badExit);
        Assert.Contains("--keep must be 1 or more", badLog, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_wrong_database_url_fails_with_a_clear_message_and_leaves_no_archive()
    {
        await using var database = await TestDatabase.CreateAsync();
        var output = BackupTestKit.TempDir();
        var wrong = new Npgsql.NpgsqlConnectionStringBuilder(database.ConnectionString) { Password = "wrong-password" }.ConnectionString;

        var (exitCode, log) = await LimenProcess.RunAsync(BackupTestKit.Environment(wrong, BackupTestKit.TempDir()), "backup", "--output", output);

        Assert.Equal(1, exitCode);
        Assert.Contains("FAILED: backup: PostgreSQL:", log, StringComparison.Ordinal);
        Assert.Contains("password authentication failed", log, StringComparison.Ordinal);
        Assert.Contains("No archive was written.", log, StringComparison.Ordinal);
        Assert.DoesNotContain("wrong-password", log, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(output));
    }

    [Fact]
    public async Task A_backup_through_a_primary_and_standby_connection_string_dumps_the_promoted_standby_after_a_failover()
    {
        await using var primary = await PrivatePostgres.StartAsync();
        await using var standby = await primary.StartStandbyAsync();
        var output = BackupTestKit.TempDir();
        var environment = BackupTestKit.Environment(PrivatePostgres.MultiHostConnectionString(primary, standby), BackupTestKit.TempDir());
        Assert.Equal(0, (await LimenProcess.RunAsync(environment, "migrate")).ExitCode);
        await primary.StopAsync();
        await standby.PromoteAsync();

        // pg_dump gets both hosts (libpq's PGHOST/PGPORT lists) and takes the one that is a primary now.
        var (exitCode, log) = await LimenProcess.RunAsync(environment, "backup", "--output", output);

        Assert.True(exitCode == 0, log);
        Assert.Contains($"127.0.0.1:{primary.Port},127.0.0.1:{standby.Port}/postgres", log, StringComparison.Ordinal);
        var manifest = BackupTestKit.Json(Path.Combine(BackupTestKit.Extract(Assert.Single(Directory.GetFiles(output))), "manifest.json"));
        Assert.False(string.IsNullOrEmpty(manifest.GetProperty("schema_migration").GetString()));
    }

    [Fact]
    public async Task A_stopped_server_fails_the_backup_and_leaves_no_archive()
    {
        await using var postgres = await PrivatePostgres.StartAsync();
        var output = BackupTestKit.TempDir();
        var environment = BackupTestKit.Environment(postgres.ConnectionString(), BackupTestKit.TempDir());
        Assert.Equal(0, (await LimenProcess.RunAsync(environment, "migrate")).ExitCode);
        await postgres.StopAsync();

        var (exitCode, log) = await LimenProcess.RunAsync(environment, "backup", "--output", output);

        Assert.Equal(1, exitCode);
        Assert.Contains("FAILED: backup: PostgreSQL:", log, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(output));
    }

    [Fact]
    public async Task A_failing_pg_dump_fails_the_backup_leaves_no_archive_and_records_the_failure()
    {
        await using var server = await LimenTestServer.StartAsync();
        // pg_dump that answers --version like the real one and then fails, as it does on a lost connection mid-dump.
        // It writes part of an archive first, as pg_dump does to its output before the connection drops.
        var bin = await BackupTestKit.PgBinWithAsync(
            "[ \"$1\" = --version ] && exec $REAL/pg_dump --version\n" +
            "printf 'PGDMP partial'\n" +
            "echo 'pg_dump: error: connection to server lost' >&2\nexit 1\n");
        var output = BackupTestKit.TempDir();
        var environment = BackupTestKit.Environment(server.Database.ConnectionString, server.StateDir);
        environment["Limen__Backup__PgBinDir"] = bin;

        var (exitCode, log) = await LimenProcess.RunAsync(environment, "backup", "--output", output);

        Assert.Equal(1, exitCode);
        Assert.Contains("pg_dump failed (exit code 1): pg_dump: error: connection to server lost", log, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(output));
        Assert.Equal(1, await server.Database.ScalarAsync(
            "SELECT count(*) FROM backup_runs WHERE kind = 'backup' AND status = 'failed' AND error LIKE 'pg_dump failed%'"));
        Assert.Contains("limen_backup_last_success_timestamp_seconds 0", await server.MetricsAsync(), StringComparison.Ordinal);
    }
}
