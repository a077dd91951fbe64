using Limen.Data;
using Limen.Features.Backup;
using Limen.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Limen.Tests.Backup;

/// <summary>`limen restore`: what it refuses, that it is all-or-nothing, and that it migrates old archives forward.</summary>
public sealed class RestoreCommandTests(ArchiveFixture fixture) : IClassFixture<ArchiveFixture>
{
    [Fact]
    public async Task A_non_empty_target_is_refused_without_yes_and_left_untouched_then_replaced_with_yes()
    {
        await using var target = await TestDatabase.CreateAsync();
        await Execute(target.ConnectionString, "CREATE TABLE precious (note text); INSERT INTO precious VALUES ('still here')");
        var environment = BackupTestKit.Environment(target.ConnectionString, BackupTestKit.TempDir());

        var (exitCode, output) = await LimenProcess.RunAsync(environment, "restore", fixture.Archive);

        Assert.Equal(3, exitCode);
        Assert.Contains($"REFUSED: Database {target.Name} is not empty", output, StringComparison.Ordinal);
        Assert.Contains("--yes", output, StringComparison.Ordinal);
        Assert.Equal(["public.precious"], await BackupTestKit.RelationsAsync(target.ConnectionString));
        Assert.Equal(1, await target.ScalarAsync("SELECT count(*) FROM precious"));

        (exitCode, output) = await LimenProcess.RunAsync(environment, "restore", fixture.Archive, "--yes");

        Assert.True(exitCode == 0, output);
        Assert.DoesNotContain("public.precious", await BackupTestKit.RelationsAsync(target.ConnectionString));
        Assert.Equal(fixture.Backup.Manifest.RowCounts["users"], await target.ScalarAsync("SELECT count(*) FROM users"));
        Assert.Equal(1, await target.ScalarAsync("SELECT count(*) FROM backup_runs WHERE kind = 'restore' AND status = 'succeeded'"));
        // The archive's own run, "running" inside its snapshot, is known to have succeeded once restored.
        Assert.Equal(1, await target.ScalarAsync(
            $"SELECT count(*) FROM backup_runs WHERE id = '{fixture.Backup.Manifest.BackupRunId}' AND status = 'succeeded'"));
    }

    [Fact]
    public async Task A_running_limen_serve_on_the_target_is_refused_unless_forced()
    {
        await using var target = await TestDatabase.CreateAsync();
        var environment = BackupTestKit.Environment(target.ConnectionString, BackupTestKit.TempDir());
        // A real `limen serve` process: its pooled connections are what restore must notice.
        var serveEnvironment = new Dictionary<string, string>(environment) { ["LIMEN_URLS"] = $"http://127.0.0.1:{Ports.Free()}" };
        using var serve = LimenProcess.Start(serveEnvironment, "serve");
        await serve.WaitForOutputAsync(l => l.Contains("Now listening on", StringComparison.Ordinal), TimeSpan.FromSeconds(60));

        var (exitCode, output) = await LimenProcess.RunAsync(environment, "restore", fixture.Archive, "--yes");

        Assert.Equal(3, exitCode);
        Assert.Contains("`limen serve` is connected to", output, StringComparison.Ordinal);
        Assert.Equal(0, await target.ScalarAsync("SELECT count(*) FROM vms"));

        (exitCode, output) = await LimenProcess.RunAsync(environment, "restore", fixture.Archive, "--yes", "--force");

        Assert.True(exitCode == 0, output);
        Assert.Equal(2, await target.ScalarAsync("SELECT count(*) FROM vms"));
    }

    [Fact]
    public async Task A_dump_that_fails_to_load_rolls_everything_back()
    {
        // Checksums cannot catch a dump that was bad when written; the single transaction must.
        var archive = await CraftArchiveAsync(fixture.Archive, dir => File.WriteAllText(Path.Combine(dir, "database.dump"), "not a pg_dump archive"));
        await using var target = await TestDatabase.CreateAsync();
        await Execute(target.ConnectionString, "CREATE TABLE precious (note text); INSERT INTO precious VALUES ('still here')");

        var (exitCode, output) = await LimenProcess.RunAsync(BackupTestKit.Environment(target.ConnectionString, BackupTestKit.TempDir()), "restore", archive, "--yes");

        Assert.Equal(1, exitCode);
        Assert.Contains("pg_restore failed", output, StringComparison.Ordinal);
        Assert.Equal(["public.precious"], await BackupTestKit.RelationsAsync(target.ConnectionString));
        Assert.Equal(1, await target.ScalarAsync("SELECT count(*) FROM precious"));
    }

    [Fact]
    public async Task An_sql_error_half_way_rolls_everything_back()
    {
        // The source has a schema of its own; the target has it too, so CREATE SCHEMA fails after
        // public was already dropped inside the transaction.
        await using var source = await TestDatabase.CreateAsync();
        await Execute(source.ConnectionString, "CREATE TABLE public.things (id int); CREATE SCHEMA extra; CREATE TABLE extra.more (id int)");
        var output = BackupTestKit.TempDir();
        var (exitCode, log) = await LimenProcess.RunAsync(BackupTestKit.Environment(source.ConnectionString, BackupTestKit.TempDir()), "backup", "--output", output);
        Assert.True(exitCode == 0, log);

        await using var target = await TestDatabase.CreateAsync();
        await Execute(target.ConnectionString, "CREATE TABLE precious (note text); INSERT INTO precious VALUES ('still here'); CREATE SCHEMA extra");

        (exitCode, log) = await LimenProcess.RunAsync(BackupTestKit.Environment(target.ConnectionString, BackupTestKit.TempDir()),
            "restore", Directory.GetFiles(output).Single(), "--yes");

        Assert.Equal(1, exitCode);
        Assert.Contains("schema \"extra\" already exists", log, StringComparison.Ordinal);
        Assert.Equal(["public.precious"], await BackupTestKit.RelationsAsync(target.ConnectionString));
        Assert.Equal(1, await target.ScalarAsync("SELECT count(*) FROM precious"));
    }

    [Fact]
    public async Task An_archive_from_an_older_schema_is_restored_and_migrated_forward()
    {
        await using var source = await TestDatabase.CreateAsync();
        string oldest;
        await using (var db = RestoreRunner.Context(source.ConnectionString))
        {
            var all = db.Database.GetMigrations().ToList();
            oldest = all[0];
            await db.GetService<IMigrator>().MigrateAsync(oldest);
        }

        await Execute(source.ConnectionString,
            "INSERT INTO users (id, username, password_hash, role, disabled, created_at, updated_at) VALUES (gen_random_uuid(), 'old-timer', 'x', 'user', false, now(), now())");
        var output = BackupTestKit.TempDir();
        var (exitCode, log) = await LimenProcess.RunAsync(BackupTestKit.Environment(source.ConnectionString, BackupTestKit.TempDir()), "backup", "--output", output);
        Assert.True(exitCode == 0, log);
        Assert.Contains("schema predates backup records", log, StringComparison.Ordinal);
        var archive = Directory.GetFiles(output).Single();
        Assert.Equal(oldest, BackupTestKit.Json(Path.Combine(BackupTestKit.Extract(archive), "manifest.json")).GetProperty("schema_migration").GetString());

        await using var target = await TestDatabase.CreateAsync();
        (exitCode, log) = await LimenProcess.RunAsync(BackupTestKit.Environment(target.ConnectionString, BackupTestKit.TempDir()), "restore", archive);

        Assert.True(exitCode == 0, log);
        Assert.Contains("migrated forward", log, StringComparison.Ordinal);
        await using var restored = RestoreRunner.Context(target.ConnectionString);
        Assert.Empty(await restored.Database.GetPendingMigrationsAsync());
        Assert.Equal("old-timer", (await restored.Users.SingleAsync()).Username);
        // Tables of later migrations exist and work.
        Assert.Equal(1, await target.ScalarAsync("SELECT count(*) FROM backup_runs WHERE kind = 'restore'"));
    }

    [Fact]
    public async Task With_config_writes_the_redacted_configuration_for_review_and_never_touches_libvirt_unasked()
    {
        await using var target = await TestDatabase.CreateAsync();
        var state = BackupTestKit.TempDir();

        var (exitCode, output) = await LimenProcess.RunAsync(BackupTestKit.Environment(target.ConnectionString, state), "restore", fixture.Archive, "--with-config");

        Assert.True(exitCode == 0, output);
        var written = Assert.Single(Directory.GetFiles(state, "restored-config-*.json"));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(written));
        Assert.Contains("Password=[redacted]", File.ReadAllText(written), StringComparison.Ordinal);
        Assert.DoesNotContain("Redefine missing libvirt domains", output, StringComparison.Ordinal);
    }

    /// <summary>An archive whose checksums are all correct but whose content was changed before they were computed.</summary>
    private static async Task<string> CraftArchiveAsync(string original, Action<string> change)
    {
        var dir = BackupTestKit.Extract(original);
        var manifest = BackupManifest.Parse(File.ReadAllBytes(Path.Combine(dir, "manifest.json")));
        File.Delete(Path.Combine(dir, "manifest.json"));
        File.Delete(Path.Combine(dir, "manifest.json.sha256"));
        change(dir);
        var output = Path.Combine(BackupTestKit.TempDir(), BackupArchive.FileName(manifest.CreatedAt));
        await BackupArchive.WriteAsync(dir, manifest.CreatedAt, files => manifest with { Files = files }, output, _ => { }, CancellationToken.None);
        return output;
    }

    private static Task Execute(string connectionString, string sql) => BackupTestKit.ExecuteAsync(connectionString, sql);
}
