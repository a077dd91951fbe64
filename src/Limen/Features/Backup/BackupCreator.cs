using System.Data;
using System.Text.RegularExpressions;
using Limen.Data;
using Npgsql;

namespace Limen.Features.Backup;

/// <param name="ConnectionString">The database to back up.</param>
/// <param name="OutputDir">Where the archive goes (created 0700 if missing).</param>
/// <param name="Keep">Keep only this many newest archives in <paramref name="OutputDir"/> afterwards; null keeps all.</param>
/// <param name="Configuration">Saved redacted.</param>
/// <param name="DomainXml">The libvirt domain XML of those of the given VMs that have a domain; throws when libvirt is unreachable.</param>
/// <param name="PgBinDir">Limen:Backup:PgBinDir, if set.</param>
public sealed record BackupRequest(
    string ConnectionString, string OutputDir, int? Keep, IConfiguration Configuration,
    Func<IReadOnlyCollection<Guid>, IReadOnlyDictionary<Guid, string>> DomainXml, string? PgBinDir);

public sealed record BackupResult(string ArchivePath, long SizeBytes, BackupManifest Manifest, IReadOnlyList<string> Removed);

/// <summary>
/// `limen backup`: one consistent snapshot of the database (exported and shared with pg_dump, so
/// the dump, the row counts and the CSVs describe the same instant), the domain XML and the redacted
/// configuration, packed into an archive that only appears once it is complete.
/// </summary>
public static partial class BackupCreator
{
    public const string ApplicationName = "limen-backup";

    public static async Task<BackupResult> CreateAsync(BackupRequest request, Steps steps, TimeProvider clock, CancellationToken cancellationToken)
    {
        var createdAt = clock.GetUtcNow();
        var output = BackupArchive.EnsurePrivateDirectory(request.OutputDir);
        var archivePath = Path.Combine(output, BackupArchive.FileName(createdAt));
        if (File.Exists(archivePath))
        {
            throw new BackupFailedException($"{archivePath} already exists (another backup started in the same second?).");
        }

        var connectionString = new NpgsqlConnectionStringBuilder(request.ConnectionString) { ApplicationName = ApplicationName, Pooling = false }.ConnectionString;
        Guid? runId = null;
        var staging = BackupArchive.CreateTemporaryDirectory(output, ".limen-backup-staging-");
        try
        {
            await using var connection = new NpgsqlConnection(connectionString);
            var (serverVersion, tools) = await steps.RunAsync("Connect to PostgreSQL and find pg_dump", async step =>
            {
                await connection.OpenAsync(cancellationToken);
                // The server reports its version when the connection starts; no query needed. Finding
                // the tools (a pg_dump --version) and recording the run are independent: run them together.
                var version = connection.ServerVersion;
                var resolving = PgTools.ResolveAsync(request.PgBinDir, connection.PostgreSqlVersion.Major, cancellationToken);
                runId = await BackupRunLog.StartAsync(connectionString, BackupRunKinds.Backup, createdAt, cancellationToken);
                var found = await resolving;
                step.Detail = $"{DatabaseConnection.Describe(connectionString)}, PostgreSQL {version}, tools in {found.BinDir}";
                return (version, found);
            });
            if (runId is null)
            {
                steps.Note("note: this database's schema predates backup records (run `limen migrate`); this run is not recorded.");
            }

            await using var snapshot = await connection.BeginTransactionAsync(IsolationLevel.RepeatableRead, cancellationToken);
            var state = await steps.RunAsync("Take a consistent snapshot", async step =>
            {
                await Execute(connection, "SET TRANSACTION READ ONLY", cancellationToken);
                var taken = await ReadSnapshotAsync(connection, cancellationToken);
                step.Detail = $"{taken.RowCounts.Count} tables, {taken.RowCounts.Values.Sum()} rows";
                return taken;
            });

            // The dump takes longest; everything else from the snapshot runs beside it.
            using var firstFailure = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var dump = steps.RunAsync("Dump the database (pg_dump, custom format)", step =>
                CancelOthersOnFailure(DumpAsync(tools, connectionString, state.SnapshotId, staging, step, firstFailure.Token), firstFailure));
            var csv = steps.RunAsync("Export metadata CSVs (users without password hashes)", step =>
                CancelOthersOnFailure(ExportCsvAsync(connection, state, staging, step, firstFailure.Token), firstFailure));
            var domains = steps.RunAsync("Save each VM's libvirt domain XML", step =>
                CancelOthersOnFailure(SaveDomainsAsync(request.DomainXml, state.VmIds, staging, step, firstFailure.Token), firstFailure));
            var config = steps.RunAsync("Save the configuration (secrets redacted)", async _ =>
            {
                var file = Path.Combine(staging, BackupManifest.ConfigFile);
                Directory.CreateDirectory(Path.GetDirectoryName(file)!);
                await File.WriteAllBytesAsync(file, RedactedConfiguration.Serialize(request.Configuration), cancellationToken);
            });
            await WhenAllAsync(dump, csv, domains, config);
            await snapshot.CommitAsync(cancellationToken);
            var missing = await domains;

            var (manifest, size) = await steps.RunAsync("Write the archive", async step =>
            {
                var notes = new List<string>(state.Notes);
                if (missing.Count > 0)
                {
                    notes.Add($"{missing.Count} VM(s) had no libvirt domain when the backup was taken (see vms_without_domain).");
                }

                var written = await BackupArchive.WriteAsync(staging, createdAt, files => new BackupManifest(
                    BackupManifest.FormatName, BackupManifest.CurrentFormatVersion, createdAt, VersionInfo.Version, state.SchemaMigration,
                    serverVersion, tools.DumpVersion, DatabaseConnection.Describe(connectionString), runId, state.RowCounts, files, missing, notes),
                    archivePath, step.Report, cancellationToken);
                step.Detail = $"{archivePath} ({Size(written.Size)})";
                return written;
            });

            var removed = request.Keep is { } keep
                ? await steps.RunAsync($"Keep the newest {keep} archive(s)", step =>
                {
                    var gone = ApplyRetention(output, keep);
                    step.Detail = gone.Count == 0 ? "nothing to remove" : "removed " + string.Join(", ", gone.Select(Path.GetFileName));
                    return Task.FromResult(gone);
                })
                : [];

            if (runId is { } id)
            {
                await BackupRunLog.FinishAsync(connectionString, id, succeeded: true, clock.GetUtcNow(), archivePath, size, null, null, cancellationToken);
            }

            return new BackupResult(archivePath, size, manifest, removed);
        }
        catch (Exception e)
        {
            if (runId is { } id)
            {
                await RecordFailureAsync(connectionString, id, clock, BackupFailedException.Describe(e), steps);
            }

            throw;
        }
        finally
        {
            Directory.Delete(staging, recursive: true);
        }
    }

    /// <summary>Archives in <paramref name="dir"/> beyond the <paramref name="keep"/> newest, deleted. Only our own file names are considered.</summary>
    public static List<string> ApplyRetention(string dir, int keep)
    {
        var archives = Directory.GetFiles(dir)
            .Where(f => ArchiveName().IsMatch(Path.GetFileName(f)))
            // The UTC timestamp in the name sorts chronologically.
            .OrderByDescending(f => Path.GetFileName(f), StringComparer.Ordinal)
            .Skip(keep)
            .ToList();
        foreach (var file in archives)
        {
            File.Delete(file);
        }

        return archives;
    }

    public static string Size(long bytes) => bytes switch
    {
        < 1024 * 1024 => $"{bytes / 1024.0:0.0} KiB",
        < 1024L * 1024 * 1024 => $"{bytes / 1024.0 / 1024:0.0} MiB",
        _ => $"{bytes / 1024.0 / 1024 / 1024:0.00} GiB",
    };

    private sealed record SnapshotState(
        string SnapshotId, Dictionary<string, long> RowCounts, string? SchemaMigration, List<Guid> VmIds, HashSet<string> Tables, List<string> Notes);

    private static async Task<SnapshotState> ReadSnapshotAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        var snapshotId = (string)(await Scalar(connection, "SELECT pg_export_snapshot()", cancellationToken))!;
        var tables = new List<string>();
        await using (var list = new NpgsqlCommand("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename", connection))
        await using (var reader = await list.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                tables.Add(reader.GetString(0));
            }
        }

        if (tables.Count == 0)
        {
            throw new BackupFailedException($"Database {connection.Database} has no tables in schema public: nothing to back up (is this Limen's database? run `limen migrate` first).");
        }

        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var table in tables)
        {
            counts[table] = (long)(await Scalar(connection, $"SELECT count(*) FROM public.{Quote(table)}", cancellationToken))!;
        }

        var migration = tables.Contains("__EFMigrationsHistory")
            ? (string?)await Scalar(connection, "SELECT max(migration_id) FROM \"__EFMigrationsHistory\"", cancellationToken)
            : null;
        var vmIds = new List<Guid>();
        if (tables.Contains("vms"))
        {
            await using var command = new NpgsqlCommand("SELECT id FROM vms ORDER BY id", connection);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                vmIds.Add(reader.GetGuid(0));
            }
        }

        return new SnapshotState(snapshotId, counts, migration, vmIds, [.. tables], []);
    }

    private static async Task DumpAsync(PgTools tools, string connectionString, string snapshotId, string staging, StepProgress step, CancellationToken cancellationToken)
    {
        var file = Path.Combine(staging, BackupManifest.DumpFile);
        // Uncompressed custom format: the archive's single gzip pass (level 1) compresses it several
        // times faster than pg_dump's default level 6, whose compression competed with the server and
        // the CSV export for the same CPUs. pg_restore then has nothing to inflate either.
        // --no-sync: the staged copy needs no durability of its own; the archive is fsynced once written.
        string[] args = ["--format=custom", "--compress=0", "--no-sync", "--no-password", "--snapshot=" + snapshotId, "--file=" + file];
        var (exitCode, output) = await PgTools.RunAsync(tools.PgDump, args, PgTools.Environment(connectionString, ApplicationName), cancellationToken);
        if (exitCode != 0)
        {
            throw new BackupFailedException($"pg_dump failed (exit code {exitCode}): {output}");
        }

        step.Detail = Size(new FileInfo(file).Length);
    }

    /// <summary>The readable side copies of the data, from the same snapshot as the dump.</summary>
    private static async Task ExportCsvAsync(NpgsqlConnection connection, SnapshotState state, string staging, StepProgress step, CancellationToken cancellationToken)
    {
        (string Table, string Query)[] exports =
        [
            ("vms", "SELECT * FROM vms ORDER BY created_at, id"),
            // Never the password hash: a CSV is for reading, not for cracking.
            ("users", "SELECT id, username, role, disabled, created_at, updated_at FROM users ORDER BY created_at, id"),
            ("vm_snapshots", "SELECT * FROM vm_snapshots ORDER BY 1"),
            ("audit_logs", "SELECT * FROM audit_logs ORDER BY id"),
        ];
        var dir = Path.Combine(staging, BackupManifest.MetadataDir);
        Directory.CreateDirectory(dir);
        long rows = 0;
        foreach (var (table, query) in exports)
        {
            var file = Path.Combine(dir, table + ".csv");
            if (!state.Tables.Contains(table))
            {
                await File.WriteAllBytesAsync(file, [], cancellationToken);
                state.Notes.Add($"metadata/{table}.csv is empty: this schema has no {table} table.");
                continue;
            }

            // Npgsql's text export is a StreamReader over the raw COPY stream; the server's CSV bytes
            // (UTF-8, Npgsql's client_encoding) go to the file as they are instead of being decoded
            // to UTF-16 and encoded back. (Its raw binary API refuses a text-format COPY.)
            using (var source = (StreamReader)await connection.BeginTextExportAsync($"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER)", cancellationToken))
            await using (var target = new FileStream(file, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous))
            {
                await source.BaseStream.CopyToAsync(target, 1 << 16, cancellationToken);
            }

            rows += state.RowCounts[table];
        }

        step.Detail = $"{exports.Length} files, {rows} rows";
    }

    private static async Task<List<Guid>> SaveDomainsAsync(
        Func<IReadOnlyCollection<Guid>, IReadOnlyDictionary<Guid, string>> domainXml, List<Guid> vmIds, string staging, StepProgress step, CancellationToken cancellationToken)
    {
        var dir = Path.Combine(staging, BackupManifest.DomainsDir);
        Directory.CreateDirectory(dir);
        // libvirt calls block; keep them off the caller's thread.
        var found = await Task.Run(() => domainXml(vmIds), cancellationToken);
        foreach (var (id, xml) in found)
        {
            await File.WriteAllTextAsync(Path.Combine(dir, $"{id}.xml"), xml, cancellationToken);
        }

        var missing = vmIds.Where(id => !found.ContainsKey(id)).ToList();
        step.Detail = $"{found.Count} of {vmIds.Count} VMs" + (missing.Count > 0 ? $"; {missing.Count} without a domain" : "");
        return missing;
    }

    private static async Task RecordFailureAsync(string connectionString, Guid id, TimeProvider clock, string error, Steps steps)
    {
        try
        {
            await BackupRunLog.FinishAsync(connectionString, id, succeeded: false, clock.GetUtcNow(), null, null, null, error, CancellationToken.None);
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException)
        {
            steps.Note($"warning: could not record the failed run: {BackupFailedException.Describe(e)}");
        }
    }

    /// <summary>Waits for all; when one failed and cancelled the others, the real failure is the one reported.</summary>
    private static async Task WhenAllAsync(params Task[] tasks)
    {
        try
        {
            await Task.WhenAll(tasks);
        }
        catch (Exception) when (tasks.FirstOrDefault(t => t.IsFaulted && t.Exception!.InnerException is not OperationCanceledException) is { } failed)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failed.Exception!.InnerException!);
        }
    }

    private static async Task<T> CancelOthersOnFailure<T>(Task<T> work, CancellationTokenSource others)
    {
        await CancelOthersOnFailure((Task)work, others);
        return await work;
    }

    private static async Task CancelOthersOnFailure(Task work, CancellationTokenSource others)
    {
        try
        {
            await work;
        }
        catch
        {
            await others.CancelAsync();
            throw;
        }
    }

    private static async Task<object?> Scalar(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        var value = await command.ExecuteScalarAsync(cancellationToken);
        return value is DBNull ? null : value;
    }

    private static async Task Execute(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    public static string Quote(string identifier) => "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    [GeneratedRegex(@"^limen-backup-\d{8}T\d{6}Z\.tar\.gz$")]
    private static partial Regex ArchiveName();
}
