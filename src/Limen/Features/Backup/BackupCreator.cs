using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using System.Threading.Channels;
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
/// `limen backup`: one consistent snapshot of the database (exported by a psql session and shared
/// with pg_dump, so the dump, the row counts and the CSVs describe the same instant), the domain XML
/// and the redacted configuration, packed into an archive that only appears once it is complete. The
/// dump streams into the archive while pg_dump runs; the rest is staged beside it and follows.
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
        var environment = PgTools.Environment(connectionString, ApplicationName);
        var runId = Guid.NewGuid();
        var recorded = false;
        var staging = BackupArchive.CreateTemporaryDirectory(output, ".limen-backup-staging-");
        PsqlSession? session = null;
        try
        {
            await using var archive = BackupArchiveWriter.Create(archivePath, createdAt);
            var csvs = new List<BackupArchiveWriter.SpoolStream>();
            await using var disposeCsvs = new DisposeAll(csvs);
            var (serverVersion, tools) = await steps.RunAsync("Connect to PostgreSQL and find pg_dump", async step =>
            {
                // Any installed psql can ask; pg_dump must then be at least the server's major.
                var found = await PgTools.ResolveAsync(request.PgBinDir, 0, cancellationToken);
                session = PsqlSession.Start(found.Psql, environment, BackupRunLog.PsqlVariables(runId, BackupRunKinds.Backup, createdAt, archivePath), staging);
                // The run is recorded before the snapshot, so the archive holds its own run as "running" (restore marks it succeeded).
                var answer = await session.RunAsync("SHOW server_version;\nSHOW server_version_num;\n" + BackupRunLog.StartInPsql, cancellationToken);
                var major = int.Parse(answer[1], CultureInfo.InvariantCulture) / 10000;
                recorded = answer[2] == "t";
                if (found.Major < major)
                {
                    found = await PgTools.ResolveAsync(request.PgBinDir, major, cancellationToken);
                }

                step.Detail = $"{DatabaseConnection.Describe(connectionString)}, PostgreSQL {answer[0]}, tools in {found.BinDir}";
                return (answer[0], found);
            });
            if (!recorded)
            {
                steps.Note("note: this database's schema predates backup records (run `limen migrate`); this run is not recorded.");
            }

            // For the manifest; asked beside the dump rather than before it.
            var dumpVersion = tools.DumpVersionAsync(cancellationToken);

            var state = await steps.RunAsync("Take a consistent snapshot", async step =>
            {
                var taken = await ReadSnapshotAsync(session!, cancellationToken);
                step.Detail = $"{taken.Tables.Count} tables, {taken.VmIds.Count} VMs";
                return taken;
            });

            // The dump takes longest and goes into the archive as pg_dump writes it; the CSVs and row
            // counts are read from it on the way. Everything else runs beside it into the staging folder.
            using var firstFailure = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var dump = steps.RunAsync("Dump the database (pg_dump, custom format)", step =>
                CancelOthersOnFailure(DumpAsync(tools, environment, state, archive, csvs, step, firstFailure.Token), firstFailure));
            var csv = steps.RunAsync("Export metadata CSVs (users without password hashes)", step =>
                CancelOthersOnFailure(ExportCsvAsync(session!, dump, state, staging, step, firstFailure.Token), firstFailure));
            var domains = steps.RunAsync("Save each VM's libvirt domain XML", step =>
                CancelOthersOnFailure(SaveDomainsAsync(request.DomainXml, state.VmIds, staging, step, firstFailure.Token), firstFailure));
            var config = steps.RunAsync("Save the configuration (secrets redacted)", async _ =>
            {
                var file = Path.Combine(staging, BackupManifest.ConfigFile);
                Directory.CreateDirectory(Path.GetDirectoryName(file)!);
                await File.WriteAllBytesAsync(file, RedactedConfiguration.Serialize(request.Configuration), cancellationToken);
            });
            await WhenAllAsync(dump, csv, domains, config);
            await session!.RunAsync("COMMIT;", cancellationToken);
            var missing = await domains;

            var (manifest, size) = await steps.RunAsync("Write the archive", async step =>
            {
                var pgDumpVersion = await dumpVersion;
                var notes = new List<string>(state.Notes);
                if (missing.Count > 0)
                {
                    notes.Add($"{missing.Count} VM(s) had no libvirt domain when the backup was taken (see vms_without_domain).");
                }

                foreach (var csv in csvs)
                {
                    await archive.AppendSpooledAsync(csv, cancellationToken);
                }

                await archive.WriteStagedAsync(staging, step.Report, cancellationToken);
                var written = await archive.CompleteAsync(files => new BackupManifest(
                    BackupManifest.FormatName, BackupManifest.CurrentFormatVersion, createdAt, VersionInfo.Version, state.SchemaMigration,
                    serverVersion, pgDumpVersion, DatabaseConnection.Describe(connectionString), recorded ? runId : null, state.RowCounts, files, missing, notes),
                    cancellationToken);
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

            await session.RunAsync(BackupRunLog.SucceededInPsql(clock.GetUtcNow(), size), cancellationToken);
            return new BackupResult(archivePath, size, manifest, removed);
        }
        catch (Exception e)
        {
            if (recorded)
            {
                await RecordFailureAsync(connectionString, runId, clock, BackupFailedException.Describe(e), steps);
            }

            throw;
        }
        finally
        {
            if (session is not null)
            {
                await session.DisposeAsync();
            }

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

    /// <summary>What the snapshot holds; the row counts are filled in from the dump (or counted, when the dump cannot be read).</summary>
    private sealed record SnapshotState(
        string SnapshotId, Dictionary<string, long> RowCounts, string? SchemaMigration, List<Guid> VmIds, List<string> Tables, List<string> Notes);

    /// <summary>The CSVs: the table, and the columns in the CSV's order (users' password hash is left out).</summary>
    private static readonly (string Table, string[]? Columns, string Query)[] CsvExports =
    [
        ("vms", null, "SELECT * FROM vms ORDER BY created_at, id"),
        // Never the password hash: a CSV is for reading, not for cracking.
        ("users", ["id", "username", "role", "disabled", "created_at", "updated_at"], "SELECT id, username, role, disabled, created_at, updated_at FROM users ORDER BY created_at, id"),
        ("vm_snapshots", null, "SELECT * FROM vm_snapshots ORDER BY 1"),
        ("audit_logs", null, "SELECT * FROM audit_logs ORDER BY id"),
    ];

    private static async Task<SnapshotState> ReadSnapshotAsync(PsqlSession session, CancellationToken cancellationToken)
    {
        var opened = await session.RunAsync("""
            BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;
            SELECT pg_export_snapshot();
            SELECT current_database();
            SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename;
            """, cancellationToken);
        var (snapshotId, database, tables) = (opened[0], opened[1], opened[2..]);
        if (tables.Count == 0)
        {
            throw new BackupFailedException($"Database {database} has no tables in schema public: nothing to back up (is this Limen's database? run `limen migrate` first).");
        }

        // One batch: the newest migration, then the VM ids, a line each.
        var queries = new StringBuilder();
        var hasMigrations = tables.Contains("__EFMigrationsHistory");
        if (hasMigrations)
        {
            queries.Append("SELECT max(migration_id) FROM \"__EFMigrationsHistory\";\n");
        }

        if (tables.Contains("vms"))
        {
            queries.Append("SELECT id FROM vms ORDER BY id;\n");
        }

        var answer = queries.Length > 0 ? await session.RunAsync(queries.ToString(), cancellationToken) : [];
        var migration = hasMigrations && answer[0] is { Length: > 0 } id ? id : null;
        var vmIds = answer.Skip(hasMigrations ? 1 : 0).Select(Guid.Parse).ToList();
        return new SnapshotState(snapshotId, new Dictionary<string, long>(StringComparer.Ordinal), migration, vmIds, tables, []);
    }

    /// <summary>
    /// pg_dump's output goes into the archive as it comes (no staged copy, compressed while the dump
    /// runs) and past a <see cref="CustomDumpReader"/> that writes the CSVs and counts the rows.
    /// True when that reading worked; false when the dump was not one it follows (the CSVs are then exported apart).
    /// </summary>
    private static async Task<bool> DumpAsync(
        PgTools tools, IDictionary<string, string> environment, SnapshotState state, BackupArchiveWriter archive, List<BackupArchiveWriter.SpoolStream> csvs,
        StepProgress step, CancellationToken cancellationToken)
    {
        // Uncompressed custom format: the archive's single gzip pass (level 1, every core) compresses
        // it several times faster than pg_dump's default level 6 would, and pg_restore then has
        // nothing to inflate. Written to a pipe, it has no data offsets; pg_restore reads it in order.
        string[] args = ["--format=custom", "--compress=0", "--no-password", "--snapshot=" + state.SnapshotId];
        // Each CSV is compressed into its own spool while the dump streams, and spliced into the archive after it.
        var reader = new CustomDumpReader(table =>
        {
            var export = CsvExports.FirstOrDefault(e => e.Table == table.Table && table.Schema == "public");
            if (export.Table is null)
            {
                return null;
            }

            var csv = archive.CreateSpoolStream($"{BackupManifest.MetadataDir}/{export.Table}.csv");
            csvs.Add(csv);
            return new CopyTextToCsv(csv, table.Columns, export.Columns ?? table.Columns);
        });
        // The CSVs are written on their own thread from copies of the pieces, so that reading them
        // never holds up the pipe pg_dump writes to (bounded: at most 8 pieces wait).
        var pieces = Channel.CreateBounded<(byte[] Buffer, int Count)>(new BoundedChannelOptions(8) { SingleReader = true, SingleWriter = true });
        UnreadableDumpException? unreadable = null;
        var reading = Task.Run(async () =>
        {
            try
            {
                await foreach (var (buffer, count) in pieces.Reader.ReadAllAsync(CancellationToken.None))
                {
                    try
                    {
                        if (unreadable is null)
                        {
                            reader.Feed(buffer.AsSpan(0, count));
                        }
                    }
                    catch (UnreadableDumpException e)
                    {
                        unreadable = e;
                    }
                    finally
                    {
                        ArrayPool<byte>.Shared.Return(buffer);
                    }
                }
            }
            catch (Exception e)
            {
                // A spool could not be written (disk full): the copy loop must not wait on a reader that is gone.
                pieces.Writer.TryComplete(e);
                throw;
            }
        }, CancellationToken.None);
        ValueTask Observe(ReadOnlyMemory<byte> piece)
        {
            var copy = ArrayPool<byte>.Shared.Rent(piece.Length);
            piece.CopyTo(copy);
            // Bounded: waits while the CSV thread is 8 pieces behind.
            return pieces.Writer.WriteAsync((copy, piece.Length), cancellationToken);
        }

        using var process = PgTools.Start(tools.PgDump, args, environment);
        var errors = process.StandardError.ReadToEndAsync(cancellationToken);
        long size;
        try
        {
            size = await archive.WriteStreamAsync(BackupManifest.DumpFile, process.StandardOutput.BaseStream, Observe, cancellationToken);
        }
        finally
        {
            pieces.Writer.TryComplete();
            await reading;
            // Cancelled or failed while copying: pg_dump must not go on reading the database.
            await PgTools.WaitAsync(process, cancellationToken.IsCancellationRequested ? cancellationToken : CancellationToken.None);
        }

        if (process.ExitCode != 0)
        {
            throw new BackupFailedException($"pg_dump failed (exit code {process.ExitCode}): {PgTools.Tail(await errors)}");
        }

        step.Detail = Size(size);
        try
        {
            if (unreadable is null)
            {
                reader.Finish();
            }
        }
        catch (UnreadableDumpException e)
        {
            unreadable = e;
        }

        if (unreadable is not null)
        {
            state.Notes.Add($"The CSVs were exported apart: {unreadable.Message}");
            foreach (var csv in csvs)
            {
                await csv.DisposeAsync();
            }

            csvs.Clear();
            return false;
        }

        foreach (var table in state.Tables)
        {
            state.RowCounts[table] = reader.RowCounts.GetValueOrDefault("public." + table);
        }

        return true;
    }

    /// <summary>
    /// The readable side copies of the data. Normally they came out of the dump (<see cref="DumpAsync"/>), in its row
    /// order; when it could not be read, they and the row counts are read from the same snapshot with psql.
    /// </summary>
    private static async Task ExportCsvAsync(
        PsqlSession session, Task<bool> dump, SnapshotState state, string staging, StepProgress step, CancellationToken cancellationToken)
    {
        var fromDump = await dump;
        Directory.CreateDirectory(Path.Combine(staging, BackupManifest.MetadataDir));
        var commands = new StringBuilder();
        if (!fromDump)
        {
            foreach (var table in state.Tables)
            {
                commands.Append(CultureInfo.InvariantCulture, $"SELECT count(*) FROM public.{Quote(table)};\n");
            }
        }

        long rows = 0;
        foreach (var (table, _, query) in CsvExports)
        {
            // Relative to the session's working folder, the staging folder: no path to quote.
            var file = $"{BackupManifest.MetadataDir}/{table}.csv";
            if (!state.Tables.Contains(table))
            {
                await File.WriteAllBytesAsync(Path.Combine(staging, file), [], cancellationToken);
                state.Notes.Add($"metadata/{table}.csv is empty: this schema has no {table} table.");
                continue;
            }

            commands.Append(CultureInfo.InvariantCulture, $"\\copy ({query}) TO '{file}' WITH (FORMAT csv, HEADER)\n");
        }

        if (!fromDump)
        {
            var counts = await session.RunAsync(commands.ToString(), cancellationToken);
            for (var i = 0; i < state.Tables.Count; i++)
            {
                state.RowCounts[state.Tables[i]] = long.Parse(counts[i], CultureInfo.InvariantCulture);
            }
        }

        foreach (var (table, _, _) in CsvExports)
        {
            rows += state.RowCounts.GetValueOrDefault(table);
        }

        step.Detail = $"{CsvExports.Length} files, {rows} rows" + (fromDump ? ", read from the dump" : ", exported apart");
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

    /// <summary>Disposes the spools whatever happened (each deletes its file).</summary>
    private sealed class DisposeAll(List<BackupArchiveWriter.SpoolStream> entries) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            foreach (var entry in entries)
            {
                await entry.DisposeAsync();
            }
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

    public static string Quote(string identifier) => "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    [GeneratedRegex(@"^limen-backup-\d{8}T\d{6}Z\.tar\.gz$")]
    private static partial Regex ArchiveName();
}
