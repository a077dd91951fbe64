using System.Diagnostics;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;
using Limen.Data;
using Limen.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Identity;
using Npgsql;

namespace Limen.Features.Backup;

/// <param name="SourceConnectionString">The live database: backed up (unless <paramref name="ArchivePath"/>), and where the drill is recorded.</param>
/// <param name="ArchivePath">Drill this archive instead of taking a fresh backup.</param>
/// <param name="BackupDir">Where the fresh backup goes.</param>
/// <param name="ReportDir">Where drill-&lt;timestamp&gt;.json/.md go.</param>
/// <param name="InstanceSettings">Configuration the second instance starts from (the same as `limen serve`'s); the drill overrides database, URL, state folder and libvirt mode.</param>
public sealed record DrillRequest(
    string SourceConnectionString,
    string? ArchivePath,
    string BackupDir,
    string ReportDir,
    IConfiguration Configuration,
    Func<IReadOnlyCollection<Guid>, IReadOnlyDictionary<Guid, string>> DomainXml,
    BackupOptions Options,
    IDictionary<string, string?> InstanceSettings);

public sealed record DrillResult(DrillReport Report, string JsonPath, string MarkdownPath)
{
    public bool Passed => Report.Result == DrillReport.Passed;
}

/// <summary>
/// `limen drill`: proves an archive restores into a working Limen — without a prompt, without
/// touching the live database (beyond recording the run) or libvirt. Every step is timed and kept
/// as evidence; the scratch database and the second instance are removed whatever happens.
/// </summary>
public static partial class DrillRunner
{
    /// <summary>The one metadata CSV the drill reads: the VM list the restored instance must show.</summary>
    private const string ArchivedVmsFile = $"{BackupManifest.MetadataDir}/vms.csv";

    public static async Task<DrillResult> RunAsync(DrillRequest request, Steps steps, TimeProvider clock, CancellationToken cancellationToken)
    {
        var startedAt = clock.GetUtcNow();
        var started = Stopwatch.GetTimestamp();
        Guid? runId = null;
        DrillArchive? archiveInfo = null;
        string? scratch = null;
        string? instanceUrl = null;
        RestoreResult? restored = null;
        string? error = null;
        ExtractedArchive? archive = null;
        WebApplication? instance = null;
        string? instanceStateDir = null;
        try
        {
            runId = await BackupRunLog.StartAsync(request.SourceConnectionString, BackupRunKinds.Drill, startedAt, cancellationToken);
            var archivePath = request.ArchivePath is { } given
                ? Path.GetFullPath(given)
                : (await BackupCreator.CreateAsync(
                    new BackupRequest(request.SourceConnectionString, request.BackupDir, null, request.Configuration, request.DomainXml, request.Options.PgBinDir),
                    steps, clock, cancellationToken)).ArchivePath;

            var restoreReads = RestoreRunner.FilesRead(configuration: false, domains: false);
            archive = await RestoreRunner.VerifyAsync(archivePath, steps, cancellationToken, path => restoreReads(path) || path == ArchivedVmsFile);
            var manifest = archive.Manifest;
            archiveInfo = new DrillArchive(archive.ArchivePath, archive.ArchiveSize, request.ArchivePath is null, manifest.CreatedAt, manifest.LimenVersion,
                manifest.SchemaMigration, manifest.PostgresVersion);

            scratch = ScratchName(request.Options.ScratchDatabasePrefix, startedAt);
            var scratchConnection = new NpgsqlConnectionStringBuilder(request.SourceConnectionString) { Database = scratch }.ConnectionString;
            await steps.RunAsync("Create the scratch database", async step =>
            {
                await CreateDatabaseAsync(request.SourceConnectionString, scratch, cancellationToken);
                step.Detail = scratch;
            });

            restored = await RestoreRunner.RestoreAsync(archive, new RestoreRequest(scratchConnection, Confirmed: false, Force: false, request.Options.PgBinDir),
                steps, clock, cancellationToken);

            var (username, password) = await steps.RunAsync("Create a temporary drill account", step => CreateDrillAccountAsync(scratchConnection, clock, step, cancellationToken));

            instanceStateDir = BackupArchive.CreateTemporaryDirectory(Path.GetTempPath(), "limen-drill-state-");
            var instanceStartedAt = clock.GetUtcNow();
            (instance, var baseAddress) = await steps.RunAsync("Start a second Limen on a free loopback port (libvirt read-only)", async step =>
            {
                var (app, address) = await StartInstanceAsync(request.InstanceSettings, scratchConnection, instanceStateDir, cancellationToken);
                step.Detail = address.ToString();
                return (app, address);
            });
            instanceUrl = baseAddress.ToString();

            using var http = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(30) };
            await steps.RunAsync("Health is ok with the database connected", step => CheckHealthAsync(http, step, cancellationToken));
            var token = await steps.RunAsync("Log in with the drill account", step => LoginAsync(http, username, password, step, cancellationToken));
            http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);

            var archivedVms = CsvFile.Read(archive.PathOf(ArchivedVmsFile));
            await steps.RunAsync("VM list matches the archive (ids, names, owners)", step => CheckVmsAsync(http, archivedVms, step, cancellationToken));
            await steps.RunAsync("Audit and user counts match the archive", step =>
                CheckCountsAsync(http, manifest, instanceStartedAt, step, cancellationToken));

            var running = archivedVms.FirstOrDefault(v => v.GetValueOrDefault("state") == Vms.VmStates.Running);
            if (running is null)
            {
                steps.Skip("A console ticket can be issued for a running VM", "no running VM in the archive");
            }
            else
            {
                await steps.RunAsync("A console ticket can be issued for a running VM", step =>
                    CheckConsoleAsync(http, Guid.Parse(running["id"]), step, cancellationToken));
            }
        }
        catch (Exception e)
        {
            error = BackupFailedException.Describe(e);
        }
        finally
        {
            archive?.Dispose();
            if (instance is not null || scratch is not null)
            {
                try
                {
                    await steps.RunAsync("Stop the drill instance and drop the scratch database", async step =>
                    {
                        if (instance is not null)
                        {
                            await instance.StopAsync(CancellationToken.None);
                            await instance.DisposeAsync();
                        }

                        if (scratch is not null)
                        {
                            await DropDatabaseAsync(request.SourceConnectionString, scratch);
                        }

                        step.Detail = scratch is null ? null : $"dropped {scratch}";
                    });
                }
                catch (Exception e)
                {
                    error ??= "Cleanup failed: " + BackupFailedException.Describe(e);
                }
            }

            if (instanceStateDir is not null && Directory.Exists(instanceStateDir))
            {
                Directory.Delete(instanceStateDir, recursive: true);
            }
        }

        var finishedAt = clock.GetUtcNow();
        var report = new DrillReport(
            error is null ? DrillReport.Passed : DrillReport.Failed, startedAt, finishedAt, Math.Round(Stopwatch.GetElapsedTime(started).TotalSeconds, 3),
            VersionInfo.Version, Environment.MachineName, DatabaseConnection.Describe(request.SourceConnectionString), archiveInfo, scratch, instanceUrl,
            restored is null ? null : Math.Round(restored.Duration.TotalSeconds, 3), restored?.RowCounts ?? [], DrillReport.From(steps.Records), error);
        var (json, markdown) = report.Write(request.ReportDir);
        if (runId is { } id)
        {
            try
            {
                await BackupRunLog.FinishAsync(request.SourceConnectionString, id, error is null, finishedAt, archiveInfo?.Path, archiveInfo?.SizeBytes, json, error,
                    CancellationToken.None);
            }
            catch (NpgsqlException e)
            {
                steps.Note($"warning: could not record the drill's result: {BackupFailedException.Describe(e)}");
            }
        }

        return new DrillResult(report, json, markdown);
    }

    /// <summary>Lower-case letters, digits and underscores only, so the name never needs quoting and a sweep can match the prefix.</summary>
    public static string ScratchName(string prefix, DateTimeOffset at)
    {
        if (!IdentifierPrefix().IsMatch(prefix))
        {
            throw new BackupFailedException($"Limen:Backup:ScratchDatabasePrefix '{prefix}' must be lower-case letters, digits and underscores.");
        }

        return $"{prefix}{at.UtcDateTime:yyyyMMddHHmmss}_{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3))}";
    }

    private static async Task CreateDatabaseAsync(string sourceConnectionString, string name, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(sourceConnectionString);
        await connection.OpenAsync(cancellationToken);
        await using var create = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
        try
        {
            await create.ExecuteNonQueryAsync(cancellationToken);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.InsufficientPrivilege)
        {
            throw new BackupFailedException($"The database role may not create databases ({e.MessageText}); the drill needs CREATEDB for its scratch database.", e);
        }
    }

    private static async Task DropDatabaseAsync(string sourceConnectionString, string name)
    {
        await using var connection = new NpgsqlConnection(sourceConnectionString);
        await connection.OpenAsync(CancellationToken.None);
        // FORCE ends the drill instance's pooled connections that outlive its disposal.
        await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS {name} WITH (FORCE)", connection);
        await drop.ExecuteNonQueryAsync(CancellationToken.None);
    }

    /// <summary>An admin that exists only in the scratch copy, with a random password: no known credentials are ever used.</summary>
    private static async Task<(string Username, string Password)> CreateDrillAccountAsync(string connectionString, TimeProvider clock, StepProgress step, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        var user = new User
        {
            Id = Guid.NewGuid(),
            Username = "drill-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(5)),
            PasswordHash = "",
            Role = Roles.Admin,
            CreatedAt = now,
            UpdatedAt = now,
        };
        var password = Convert.ToBase64String(RandomNumberGenerator.GetBytes(24));
        user.PasswordHash = new PasswordHasher<User>().HashPassword(user, password);
        await using var db = RestoreRunner.Context(connectionString);
        db.Users.Add(user);
        await db.SaveChangesAsync(cancellationToken);
        step.Detail = user.Username;
        return (user.Username, password);
    }

    private static async Task<(WebApplication App, Uri Address)> StartInstanceAsync(
        IDictionary<string, string?> settings, string connectionString, string stateDir, CancellationToken cancellationToken)
    {
        var overrides = new Dictionary<string, string?>(settings)
        {
            ["urls"] = "http://127.0.0.1:0",
            ["ConnectionStrings:Limen"] = connectionString,
            ["Limen:StateDir"] = stateDir,
            ["Limen:AdminPassword"] = null,
            // The drill instance sees the real domains and consoles; libvirt refuses it every change.
            ["Limen:Hypervisor:ReadOnly"] = "true",
            ["Logging:LogLevel:Default"] = "Error",
        };
        var app = LimenServer.Build(overrides);
        try
        {
            await LimenStartup.PrepareAsync(app.Services, cancellationToken);
            await app.StartAsync(cancellationToken);
            var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
            return (app, new Uri(address));
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }
    }

    private static async Task CheckHealthAsync(HttpClient http, StepProgress step, CancellationToken cancellationToken)
    {
        using var response = await http.GetAsync("/api/health", cancellationToken);
        var body = await response.Content.ReadAsStringAsync(cancellationToken);
        using var json = JsonDocument.Parse(body);
        var status = json.RootElement.GetProperty("status").GetString();
        var db = json.RootElement.GetProperty("db").GetString();
        var libvirt = json.RootElement.TryGetProperty("libvirt", out var l) ? l.GetString() : null;
        step.Detail = $"HTTP {(int)response.StatusCode}, status {status}, db {db}, libvirt {libvirt}";
        if (!response.IsSuccessStatusCode || status != "ok" || db != "connected")
        {
            throw new BackupFailedException($"Health is not ok: {step.Detail}");
        }
    }

    private static async Task<string> LoginAsync(HttpClient http, string username, string password, StepProgress step, CancellationToken cancellationToken)
    {
        using var response = await http.PostAsJsonAsync("/api/auth/login", new Dictionary<string, string> { ["username"] = username, ["password"] = password }, cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            throw new BackupFailedException($"Login as {username} answered HTTP {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(cancellationToken)}");
        }

        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync(cancellationToken));
        var token = json.RootElement.GetProperty("access_token").GetString();
        if (string.IsNullOrEmpty(token))
        {
            throw new BackupFailedException("Login answered without an access token.");
        }

        // The token itself is never written to the evidence.
        step.Detail = $"HTTP {(int)response.StatusCode}, token_type {json.RootElement.GetProperty("token_type").GetString()}, expires_in {json.RootElement.GetProperty("expires_in").GetInt32()}";
        return token;
    }

    private static async Task CheckVmsAsync(HttpClient http, List<Dictionary<string, string>> archived, StepProgress step, CancellationToken cancellationToken)
    {
        var listed = new HashSet<(string Id, string Name, string Owner)>();
        for (var page = 1; ; page++)
        {
            using var json = await GetJsonAsync(http, $"/api/vms?page={page}&page_size=200", cancellationToken);
            var items = json.RootElement.GetProperty("items");
            foreach (var vm in items.EnumerateArray())
            {
                listed.Add((vm.GetProperty("id").GetString()!, vm.GetProperty("name").GetString()!, vm.GetProperty("owner_id").GetString()!));
            }

            if (items.GetArrayLength() == 0 || listed.Count >= json.RootElement.GetProperty("total").GetInt32())
            {
                break;
            }
        }

        var expected = archived.Select(v => (v["id"], v["name"], v["owner_id"])).ToHashSet();
        var missing = expected.Except(listed).ToList();
        var unexpected = listed.Except(expected).ToList();
        if (missing.Count > 0 || unexpected.Count > 0)
        {
            throw new BackupFailedException($"The VM list differs from the archive: {missing.Count} missing (e.g. {string.Join(", ", missing.Take(3))}), " +
                $"{unexpected.Count} unexpected (e.g. {string.Join(", ", unexpected.Take(3))}).");
        }

        step.Detail = $"{listed.Count} VMs, all match";
    }

    private static async Task CheckCountsAsync(HttpClient http, BackupManifest manifest, DateTimeOffset instanceStartedAt, StepProgress step, CancellationToken cancellationToken)
    {
        // The drill's own login is audited too; the archive's rows are all older than the instance.
        var before = Uri.EscapeDataString(instanceStartedAt.ToString("O", System.Globalization.CultureInfo.InvariantCulture));
        using var audit = await GetJsonAsync(http, $"/api/audit?to={before}&page_size=1", cancellationToken);
        using var users = await GetJsonAsync(http, "/api/admin/users?page_size=1", cancellationToken);
        long auditTotal = audit.RootElement.GetProperty("total").GetInt32();
        // The drill account is the one user the archive does not have.
        long userTotal = users.RootElement.GetProperty("total").GetInt32() - 1;
        var expectedAudit = manifest.RowCounts.GetValueOrDefault("audit_logs");
        var expectedUsers = manifest.RowCounts.GetValueOrDefault("users");
        step.Detail = $"audit entries {auditTotal} (archive {expectedAudit}), users {userTotal} + drill account (archive {expectedUsers})";
        if (auditTotal != expectedAudit || userTotal != expectedUsers)
        {
            throw new BackupFailedException("Counts differ: " + step.Detail);
        }
    }

    private static async Task CheckConsoleAsync(HttpClient http, Guid vmId, StepProgress step, CancellationToken cancellationToken)
    {
        using var response = await http.PostAsync($"/api/vms/{vmId}/console", null, cancellationToken);
        var body = await response.Content.ReadAsStringAsync(cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            throw new BackupFailedException($"POST /api/vms/{vmId}/console answered HTTP {(int)response.StatusCode}: {body}");
        }

        using var json = JsonDocument.Parse(body);
        var root = json.RootElement;
        if (!root.TryGetProperty("ticket", out var ticket) || string.IsNullOrEmpty(ticket.GetString())
            || !root.TryGetProperty("ws_url", out var wsUrl) || string.IsNullOrEmpty(wsUrl.GetString())
            || !root.TryGetProperty("expires_at", out var expires))
        {
            throw new BackupFailedException($"The console ticket response lacks ticket, ws_url or expires_at: HTTP {(int)response.StatusCode}");
        }

        // The one-time ticket is a credential: the evidence names the VM and expiry, never the ticket.
        step.Detail = $"HTTP {(int)response.StatusCode} for VM {vmId}, expires_at {expires.GetString()}";
    }

    private static async Task<JsonDocument> GetJsonAsync(HttpClient http, string path, CancellationToken cancellationToken)
    {
        using var response = await http.GetAsync(path, cancellationToken);
        var body = await response.Content.ReadAsStringAsync(cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            throw new BackupFailedException($"GET {path} answered HTTP {(int)response.StatusCode}: {body}");
        }

        return JsonDocument.Parse(body);
    }

    [GeneratedRegex("^[a-z_][a-z0-9_]*$")]
    private static partial Regex IdentifierPrefix();
}
