using System.Text.Json;
using Limen.Features.Backup;
using Limen.Tests.Infrastructure;

namespace Limen.Tests.Backup;

/// <summary>`limen drill` end to end: a real guest running on qemu:///system, evidence kept in artifacts/drill/.</summary>
[Collection(QemuSystemCollection.Name)]
public sealed class DrillCommandTests
{
    [Fact]
    public async Task Limen_drill_passes_against_a_running_guest_leaves_libvirt_and_the_source_alone_and_keeps_evidence()
    {
        await using var server = await LimenTestServer.StartAsync(new Dictionary<string, string?> { ["Limen:Hypervisor:Uri"] = "qemu:///system" });
        var image = await VmTestKit.RegisterTinyGuestAsync(server);
        var (ownerId, token) = await server.CreateUserAsync("drill-owner");
        using var client = server.Client(token);
        var vm = (await VmTestKit.CreateVmAsync(client, image, "drilled", start: true, memoryMb: 256)).GetProperty("id").GetGuid();
        try
        {
            var domainBefore = Domain(server, vm);
            var vmsBefore = await server.Database.ScalarAsync("SELECT count(*) FROM vms");
            var evidence = RepoPaths.Artifacts("drill");
            var started = DateTime.UtcNow;

            var (exitCode, output) = await LimenProcess.RunAsync(
                BackupTestKit.Environment(server.Database.ConnectionString, server.StateDir, "qemu:///system"),
                "drill", "--output", BackupTestKit.TempDir(), "--report-dir", evidence);

            Assert.True(exitCode == 0, output);
            Assert.Contains("Drill PASSED", output, StringComparison.Ordinal);
            var report = Directory.GetFiles(evidence, "drill-*.json").Where(f => File.GetLastWriteTimeUtc(f) >= started).Single();
            Assert.True(File.Exists(Path.ChangeExtension(report, ".md")));
            var json = BackupTestKit.Json(report);
            Assert.Equal("passed", json.GetProperty("result").GetString());
            var steps = json.GetProperty("steps").EnumerateArray().ToList();
            Assert.All(steps, s => Assert.Equal("passed", s.GetProperty("result").GetString()));
            var console = steps.Single(s => s.GetProperty("name").GetString()!.Contains("console ticket", StringComparison.Ordinal));
            Assert.Contains(vm.ToString(), console.GetProperty("detail").GetString(), StringComparison.Ordinal);
            Assert.Contains(steps, s => s.GetProperty("name").GetString() == "VM list matches the archive (ids, names, owners)");
            Assert.All(json.GetProperty("row_counts").EnumerateArray(), c => Assert.True(c.GetProperty("matches").GetBoolean(), c.ToString()));
            Assert.True(json.GetProperty("restore_seconds").GetDouble() > 0);
            Assert.True(json.GetProperty("archive").GetProperty("size_bytes").GetInt64() > 0);
            // The evidence holds no credentials: neither the drill account's password nor tokens.
            Assert.DoesNotContain("access_token", File.ReadAllText(report), StringComparison.Ordinal);

            var manifest = BackupTestKit.Json(Path.Combine(BackupTestKit.Extract(json.GetProperty("archive").GetProperty("path").GetString()!), "manifest.json"));
            Assert.Equal(0, manifest.GetProperty("vms_without_domain").GetArrayLength());

            var scratch = json.GetProperty("scratch_database").GetString()!;
            Assert.StartsWith("limen_test_drill_", scratch, StringComparison.Ordinal);
            Assert.Equal(0, await server.Database.ScalarAsync($"SELECT count(*) FROM pg_database WHERE datname = '{scratch}'"));

            // Libvirt and the source are as they were; the drill and its backup are recorded there.
            // (Only this test's domain: other tests may run guests on qemu:///system meanwhile.)
            Assert.Equal(domainBefore, Domain(server, vm));
            Assert.Equal(vmsBefore, await server.Database.ScalarAsync("SELECT count(*) FROM vms"));
            Assert.Equal(1, await server.Database.ScalarAsync("SELECT count(*) FROM backup_runs WHERE kind = 'drill' AND status = 'succeeded' AND report_path IS NOT NULL"));
            Assert.Equal(1, await server.Database.ScalarAsync("SELECT count(*) FROM backup_runs WHERE kind = 'backup' AND status = 'succeeded'"));
            Assert.DoesNotContain("limen_restore_drill_last_success_timestamp_seconds 0\n", await server.MetricsAsync(), StringComparison.Ordinal);
            Assert.Equal(0, await server.Database.ScalarAsync($"SELECT count(*) FROM users WHERE username LIKE 'drill-%' AND id <> '{ownerId}'"));
        }
        finally
        {
            await client.DeleteAsync($"/api/vms/{vm}");
        }
    }

    [Fact]
    public async Task A_failing_drill_drops_its_scratch_database_writes_the_evidence_records_the_failure_and_exits_non_zero()
    {
        await using var server = await LimenTestServer.StartAsync();
        await BackupTestKit.SeedAsync(server);
        var good = (await BackupTestKit.BackupInProcessAsync(server, BackupTestKit.TempDir())).ArchivePath;
        // Checksums fine, content unloadable: fails after the scratch database exists.
        var dir = BackupTestKit.Extract(good);
        var manifest = BackupManifest.Parse(File.ReadAllBytes(Path.Combine(dir, "manifest.json")));
        File.Delete(Path.Combine(dir, "manifest.json"));
        File.Delete(Path.Combine(dir, "manifest.json.sha256"));
        File.WriteAllText(Path.Combine(dir, "database.dump"), "garbage");
        var bad = Path.Combine(BackupTestKit.TempDir(), BackupArchive.FileName(manifest.CreatedAt));
        await BackupArchive.WriteAsync(dir, manifest.CreatedAt, files => manifest with { Files = files }, bad, _ => { }, CancellationToken.None);
        var reports = BackupTestKit.TempDir();

        var (exitCode, output) = await LimenProcess.RunAsync(BackupTestKit.Environment(server.Database.ConnectionString, server.StateDir),
            "drill", "--archive", bad, "--report-dir", reports);

        Assert.Equal(1, exitCode);
        Assert.Contains("Drill FAILED: pg_restore failed", output, StringComparison.Ordinal);
        var json = BackupTestKit.Json(Directory.GetFiles(reports, "drill-*.json").Single());
        Assert.Equal("failed", json.GetProperty("result").GetString());
        var steps = json.GetProperty("steps").EnumerateArray().ToList();
        Assert.Equal("failed", steps.Single(s => s.GetProperty("name").GetString()!.StartsWith("Restore the dump", StringComparison.Ordinal)).GetProperty("result").GetString());
        Assert.Equal("passed", steps[^1].GetProperty("result").GetString());
        Assert.Contains("drop the scratch database", steps[^1].GetProperty("name").GetString(), StringComparison.Ordinal);
        var scratch = json.GetProperty("scratch_database").GetString()!;
        Assert.Equal(0, await server.Database.ScalarAsync($"SELECT count(*) FROM pg_database WHERE datname = '{scratch}'"));
        Assert.Equal(1, await server.Database.ScalarAsync("SELECT count(*) FROM backup_runs WHERE kind = 'drill' AND status = 'failed' AND error LIKE 'pg_restore failed%'"));
        Assert.Contains("limen_restore_drill_last_success_timestamp_seconds 0", await server.MetricsAsync(), StringComparison.Ordinal);
    }

    /// <summary>The domain's state and persistent definition: what a drill that touched libvirt would have changed.</summary>
    private static (Limen.Libvirt.DomainState State, string Xml) Domain(LimenTestServer server, Guid vm) => VmTestKit.Libvirt(server, c =>
    {
        using var domain = c.LookupDomainByUuid(vm)!;
        return (domain.GetState().State, domain.GetXmlDesc(Limen.Libvirt.DomainXmlFlags.Inactive));
    });
}
