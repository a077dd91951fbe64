using System.Formats.Tar;
using System.IO.Compression;
using System.Net.Http.Json;
using System.Text.Json;
using Limen.Features.Backup;
using Limen.Features.Hosts;
using Limen.Tests.Infrastructure;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Limen.Tests.Backup;

/// <summary>Archives, folders and `limen` environments for the backup, restore and drill tests.</summary>
public static class BackupTestKit
{
    public const string UserPassword = "correct horse battery";

    /// <summary>A temporary folder under the prefix ./test.sh sweeps.</summary>
    public static string TempDir() => Directory.CreateTempSubdirectory("limen-test-backup-").FullName;

    /// <summary>What `limen backup|restore|drill` needs to act on <paramref name="connectionString"/> like the test server does.</summary>
    public static Dictionary<string, string> Environment(string connectionString, string stateDir, string hypervisorUri = "test:///default") => new()
    {
        ["ConnectionStrings__Limen"] = connectionString,
        ["LIMEN_STATE_DIR"] = stateDir,
        ["Limen__Hypervisor__Uri"] = hypervisorUri,
        ["Limen__Hypervisor__DomainPrefix"] = LimenTestServer.DomainPrefix,
        // ./test.sh sweeps limen_test_* databases a killed drill would leave.
        ["Limen__Backup__ScratchDatabasePrefix"] = "limen_test_drill_",
    };

    /// <summary>A backup made in-process with the server's own libvirt connection (the test driver's domains live there).</summary>
    public static async Task<BackupResult> BackupInProcessAsync(LimenTestServer server, string outputDir, string? pgBinDir = null)
    {
        var hypervisors = server.Services.GetRequiredService<HostRegistry>().All.Select(h => h.Hypervisor).ToList();
        var request = new BackupRequest(server.Database.ConnectionString, outputDir, null, server.Services.GetRequiredService<IConfiguration>(),
            ids => LibvirtDomainXml.Read(hypervisors, ids), pgBinDir);
        return await BackupCreator.CreateAsync(request, new PlainSteps(TextWriter.Null), TimeProvider.System, CancellationToken.None);
    }

    /// <summary>Users, VMs (one running) and audit rows created through the API.</summary>
    public static async Task<SeedData> SeedAsync(LimenTestServer server)
    {
        var image = await VmTestKit.RegisterBlankImageAsync(server);
        var (aliceId, alice) = await server.CreateUserAsync("alice");
        var (bobId, bob) = await server.CreateUserAsync("bob");
        using var aliceClient = server.Client(alice);
        using var bobClient = server.Client(bob);
        var running = (await VmTestKit.CreateVmAsync(aliceClient, image, "alice-web", start: true)).GetProperty("id").GetGuid();
        var stopped = (await VmTestKit.CreateVmAsync(bobClient, image, "bob-db")).GetProperty("id").GetGuid();
        // A failed login leaves an audit row of another kind.
        using var anonymous = server.Client();
        await anonymous.PostAsJsonAsync("/api/auth/login", new { username = "alice", password = "wrong password!!" });
        return new SeedData(aliceId, bobId, running, stopped);
    }

    /// <summary>A new test database with Limen's schema, and the `limen` environment that points at it.</summary>
    public static async Task<(TestDatabase Database, Dictionary<string, string> Environment)> MigratedDatabaseAsync()
    {
        var database = await TestDatabase.CreateAsync();
        var environment = Environment(database.ConnectionString, TempDir());
        var (exitCode, log) = await LimenProcess.RunAsync(environment, "migrate");
        Assert.True(exitCode == 0, log);
        return (database, environment);
    }

    /// <summary>A migrated database holding <paramref name="auditRows"/> audit rows, and the archive `limen backup` wrote of it.</summary>
    public static async Task<(TestDatabase Database, Dictionary<string, string> Environment, string Archive)> BackedUpWithAuditRowsAsync(int auditRows)
    {
        var (database, environment) = await MigratedDatabaseAsync();
        try
        {
            await InsertAuditRowsAsync(database.ConnectionString, auditRows);
            var output = TempDir();
            var (exitCode, log) = await LimenProcess.RunAsync(environment, "backup", "--output", output);
            Assert.True(exitCode == 0, log);
            return (database, environment, Assert.Single(Directory.GetFiles(output)));
        }
        catch
        {
            await database.DisposeAsync();
            throw;
        }
    }

    /// <summary><paramref name="count"/> audit rows of varied text (about 330 bytes each in the dump and again in the CSV).</summary>
    public static Task InsertAuditRowsAsync(string connectionString, int count) => ExecuteAsync(connectionString, $"""
        INSERT INTO audit_logs (time, request_id, username, action, target_type, target_id, result, client_ip, user_agent, details)
        SELECT now() - i * interval '1 second', md5(i::text), 'user' || (i % 50), 'vm.start', 'vm', md5((i * 7)::text), 'success',
               '10.0.' || (i % 250) || '.' || (i % 200), 'limen-test ' || md5((i * 13)::text), jsonb_build_object('n', i, 's', 'x,"y"')
        FROM generate_series(1, {count}) AS i
        """);

    /// <summary>
    /// A folder for Limen:Backup:PgBinDir whose pg_dump is <paramref name="pgDumpScript"/> (a shell
    /// script; $REAL is the real tools' folder) beside the real pg_restore and psql.
    /// </summary>
    public static async Task<string> PgBinWithAsync(string pgDumpScript)
    {
        const string real = "/usr/lib/postgresql/15/bin";
        var bin = TempDir();
        await File.WriteAllTextAsync(Path.Combine(bin, "pg_dump"), $"#!/bin/sh\nREAL={real}\n{pgDumpScript}");
        File.SetUnixFileMode(Path.Combine(bin, "pg_dump"), (UnixFileMode)Convert.ToInt32("755", 8));
        File.CreateSymbolicLink(Path.Combine(bin, "pg_restore"), $"{real}/pg_restore");
        File.CreateSymbolicLink(Path.Combine(bin, "psql"), $"{real}/psql");
        return bin;
    }

    /// <summary>Unpacks an archive into a fresh folder (no verification: tests damage archives on purpose).</summary>
    public static string Extract(string archive)
    {
        var dir = TempDir();
        using var file = File.OpenRead(archive);
        using var gzip = new GZipStream(file, CompressionMode.Decompress);
        TarFile.ExtractToDirectory(gzip, dir, overwriteFiles: false);
        return dir;
    }

    /// <summary>Packs <paramref name="dir"/> as a .tar.gz, entries in <paramref name="order"/> (default: all files, sorted).</summary>
    public static string Pack(string dir, string output, IEnumerable<string>? order = null)
    {
        using var file = File.Create(output);
        using var gzip = new GZipStream(file, CompressionLevel.Fastest);
        using var tar = new TarWriter(gzip, TarEntryFormat.Pax);
        foreach (var name in order ?? Directory.GetFiles(dir, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(dir, f)).Order(StringComparer.Ordinal))
        {
            tar.WriteEntry(Path.Combine(dir, name), name);
        }

        return output;
    }

    /// <summary>The archive with one change made inside it, repacked as a new file.</summary>
    public static string Repack(string archive, Action<string> change)
    {
        var dir = Extract(archive);
        change(dir);
        var files = Directory.GetFiles(dir, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(dir, f)).ToHashSet();
        var order = EntryOrder(archive).Where(files.Contains).ToList();
        return Pack(dir, Path.Combine(TempDir(), "changed.tar.gz"), files.Except(order).Order(StringComparer.Ordinal).Concat(order));
    }

    /// <summary>Entry names in the archive's own order (manifest last).</summary>
    public static List<string> EntryOrder(string archive)
    {
        using var file = File.OpenRead(archive);
        using var gzip = new GZipStream(file, CompressionMode.Decompress);
        using var tar = new TarReader(gzip);
        var names = new List<string>();
        while (tar.GetNextEntry() is { } entry)
        {
            names.Add(entry.Name);
        }

        return names;
    }

    public static void FlipByte(string file, long? at = null)
    {
        var bytes = File.ReadAllBytes(file);
        var index = (int)(at ?? bytes.Length / 2);
        bytes[index] ^= 0x01;
        File.WriteAllBytes(file, bytes);
    }

    public static async Task<List<string>> RelationsAsync(string connectionString)
    {
        var state = await RestoreRunner.InspectAsync(connectionString, null, CancellationToken.None);
        return [.. state.Relations];
    }

    public static async Task<long> ScalarAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return Convert.ToInt64(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    public static async Task ExecuteAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    public static JsonElement Json(string file) => JsonDocument.Parse(File.ReadAllText(file)).RootElement;
}

public sealed record SeedData(Guid AliceId, Guid BobId, Guid RunningVm, Guid StoppedVm);

/// <summary>A seeded server and one archive of it, shared by the tests that only read or damage the archive.</summary>
public sealed class ArchiveFixture : IAsyncLifetime
{
    private LimenTestServer? server;

    public LimenTestServer Server => server ?? throw new InvalidOperationException("not started");
    public SeedData Seed { get; private set; } = null!;
    public BackupResult Backup { get; private set; } = null!;
    public string Archive => Backup.ArchivePath;

    public async Task InitializeAsync()
    {
        server = await LimenTestServer.StartAsync();
        Seed = await BackupTestKit.SeedAsync(server);
        Backup = await BackupTestKit.BackupInProcessAsync(server, BackupTestKit.TempDir());
    }

    public async Task DisposeAsync()
    {
        if (server is not null)
        {
            await server.DisposeAsync();
        }
    }
}
