using System.Diagnostics;
using System.Globalization;
using Limen.Data;
using Limen.Libvirt;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace Limen.Features.Backup;

/// <param name="TargetConnectionString">The database to restore into.</param>
/// <param name="Confirmed">Replace a non-empty target (--yes, or the operator typed its name).</param>
/// <param name="Force">Restore even while `limen serve` is connected to the target.</param>
/// <param name="RedefineDomainsUri">Define the archived libvirt domains that are missing on this libvirt URI; null leaves libvirt alone.</param>
/// <param name="ConfigOutputDir">Write the archived (redacted) configuration here for review; null skips it.</param>
public sealed record RestoreRequest(
    string TargetConnectionString, bool Confirmed, bool Force, string? PgBinDir, string? RedefineDomainsUri = null, string? ConfigOutputDir = null);

public sealed record RowCountCheck(string Table, long Expected, long Restored)
{
    public bool Matches => Expected == Restored;
}

public sealed record RestoreResult(
    IReadOnlyList<RowCountCheck> RowCounts, IReadOnlyList<string> AppliedMigrations, TimeSpan Duration, IReadOnlyList<Guid> RedefinedDomains, string? ConfigPath);

/// <summary>What is in the target database now: decides whether restore may go ahead.</summary>
/// <param name="FreshPublicSchema">Schema public exists and holds nothing (no relations, functions or types): a dump loads into it as it is.</param>
public sealed record TargetState(string Database, IReadOnlyList<string> Relations, int ServeConnections, int ServerMajor, bool FreshPublicSchema = false)
{
    public bool IsEmpty => Relations.Count == 0;
}

/// <summary>
/// `limen restore`: verify the archive completely, then replace the target's public schema with
/// the dump in one transaction (psql fed by pg_restore; nothing is committed unless all of it
/// applied), compare row counts with the manifest, and migrate the schema forward.
/// </summary>
public static class RestoreRunner
{
    public const string ApplicationName = "limen-restore";

    /// <summary>StepProgress 1, before anything is touched: the archive is intact, ours, and from a schema this Limen knows.</summary>
    /// <param name="extract">The files the caller reads (<see cref="FilesRead"/>); null extracts all.</param>
    /// <param name="feed">Set when the dump is loaded while the archive is verified (<see cref="LoadWhileVerifyingAsync"/>); told the verdict.</param>
    public static async Task<ExtractedArchive> VerifyAsync(
        string archivePath, Steps steps, CancellationToken cancellationToken, Func<string, bool>? extract = null, DumpFeed? feed = null)
    {
        try
        {
            var archive = await VerifyCoreAsync(archivePath, steps, extract, feed, cancellationToken);
            feed?.Verified();
            return archive;
        }
        catch
        {
            feed?.Rejected();
            throw;
        }
    }

    /// <summary>
    /// What <see cref="RestoreAsync"/> reads from a verified archive: the dump, the configuration
    /// with <see cref="RestoreRequest.ConfigOutputDir"/>, the domain XMLs with
    /// <see cref="RestoreRequest.RedefineDomainsUri"/>; never the metadata CSVs.
    /// </summary>
    public static Func<string, bool> FilesRead(bool configuration, bool domains) =>
        path => path == BackupManifest.DumpFile
            || (configuration && path == BackupManifest.ConfigFile)
            || (domains && path.StartsWith(BackupManifest.DomainsDir + "/", StringComparison.Ordinal));

    private static Task<ExtractedArchive> VerifyCoreAsync(
        string archivePath, Steps steps, Func<string, bool>? extract, DumpFeed? feed, CancellationToken cancellationToken) =>
        steps.RunAsync("Verify the archive (format, every checksum)", async step =>
        {
            var archive = await BackupArchive.OpenAsync(archivePath, step.Report, cancellationToken, extract, feed);
            try
            {
                var migration = archive.Manifest.SchemaMigration;
                if (migration is not null && !KnownMigrations().Contains(migration))
                {
                    throw new ArchiveRejectedException(
                        $"The archive's schema ({migration}) is newer than this Limen ({VersionInfo.Version}) knows; restore it with the Limen that wrote it ({archive.Manifest.LimenVersion}, same build or newer).");
                }

                step.Detail = $"{archive.Manifest.Files.Count} files verified, created {archive.Manifest.CreatedAt:u} by Limen {archive.Manifest.LimenVersion}, schema {migration ?? "none"}";
                return archive;
            }
            catch
            {
                archive.Dispose();
                throw;
            }
        });

    /// <summary>
    /// What the target holds and who uses it, through psql: native, it answers in about 20 ms where
    /// Npgsql's first connection in this process costs about 0.2 s of JIT, and a fresh target's load
    /// waits for this answer.
    /// </summary>
    public static async Task<TargetState> InspectAsync(string connectionString, string? pgBinDir, CancellationToken cancellationToken)
    {
        var tools = await PgTools.ResolveAsync(pgBinDir, 0, cancellationToken);
        // `limen serve` names its connections (LimenServer.DatabaseApplicationName); other roles'
        // application names are visible only with pg_read_all_stats, so restore as serve's role.
        var variables = new Dictionary<string, string> { ["limen_serve"] = Hosting.LimenServer.DatabaseApplicationName };
        await using var session = PsqlSession.Start(tools.Psql, PgTools.Environment(connectionString, ApplicationName), variables, Path.GetTempPath());
        List<string> answer;
        try
        {
            answer = await session.RunAsync("""
                SELECT current_database();
                SHOW server_version_num;
                SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = :'limen_serve' AND pid <> pg_backend_pid();
                SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = 'public')
                   AND NOT EXISTS (SELECT FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public')
                   AND NOT EXISTS (SELECT FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = 'public');
                SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
                  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
                ORDER BY 1;
                """, cancellationToken);
        }
        catch (BackupFailedException e)
        {
            throw new BackupFailedException($"Cannot connect to the target database {DatabaseConnection.Describe(connectionString)}: {e.Message}", e);
        }

        var relations = answer[4..];
        return new TargetState(answer[0], relations, int.Parse(answer[2], CultureInfo.InvariantCulture),
            int.Parse(answer[1], CultureInfo.InvariantCulture) / 10000, answer[3] == "t" && relations.Count == 0);
    }

    /// <summary>Why restore must not go ahead on <paramref name="target"/>, or null.</summary>
    public static string? Refusal(TargetState target, bool confirmed, bool force) =>
        target.ServeConnections > 0 && !force
            ? $"`limen serve` is connected to {target.Database} ({target.ServeConnections} connection(s)). Stop it first — restoring under a running server " +
              "would mix old and new data in its caches and sessions — or pass --force."
            : !target.IsEmpty && !confirmed
                ? $"Database {target.Database} is not empty ({target.Relations.Count} relations, e.g. {string.Join(", ", target.Relations.Take(3))}); " +
                  "restoring replaces all of its data. Re-run with --yes to replace it (on a terminal, restore asks you to type the database name)."
                : null;

    /// <param name="inspected">
    /// The target as the caller already read it (InspectAsync, e.g. while the archive was being
    /// verified); null reads it here. Either way the refusal rules are applied before anything is written.
    /// </param>
    /// <param name="loading">The load already under way (<see cref="LoadWhileVerifyingAsync"/>); this waits for it instead of loading.</param>
    public static async Task<RestoreResult> RestoreAsync(
        ExtractedArchive archive, RestoreRequest request, Steps steps, TimeProvider clock, CancellationToken cancellationToken, TargetState? inspected = null,
        Task? loading = null)
    {
        var started = Stopwatch.GetTimestamp();
        var startedAt = clock.GetUtcNow();
        var connectionString = WithApplicationName(request.TargetConnectionString);
        var (tools, empty) = await steps.RunAsync("Check the target database", async step =>
        {
            var state = inspected ?? await InspectAsync(connectionString, request.PgBinDir, cancellationToken);
            if (Refusal(state, request.Confirmed, request.Force) is { } refusal)
            {
                throw new RestoreRefusedException(refusal);
            }

            var found = await PgTools.ResolveAsync(request.PgBinDir, state.ServerMajor, cancellationToken);
            step.Detail = $"{DatabaseConnection.Describe(connectionString)}: " + (state.IsEmpty ? "empty" : $"replacing {state.Relations.Count} relations")
                + (state.ServeConnections > 0 ? $", {state.ServeConnections} limen serve connection(s) (--force)" : "");
            return (found, state.FreshPublicSchema);
        });

        // The checks after the load go through psql, which connects while the load runs (native: no
        // Npgsql JIT competing with the load for the CPU). It only reads until the load has committed.
        await using var checks = PsqlSession.Start(tools.Psql, PgTools.Environment(connectionString, ApplicationName),
            BackupRunLog.PsqlVariables(Guid.NewGuid(), BackupRunKinds.Restore, startedAt, archive.ArchivePath), Path.GetTempPath());
        await steps.RunAsync(empty ? "Restore the dump in one transaction (pg_restore)" : "Restore the dump in one transaction (pg_restore | psql)", async step =>
        {
            if (loading is not null)
            {
                await loading;
                step.Detail = "loaded while the archive was verified, committed once it was proven good";
            }
            else if (empty)
            {
                await LoadIntoEmptyAsync(tools, archive.PathOf(BackupManifest.DumpFile), connectionString, step, cancellationToken);
            }
            else
            {
                await LoadAsync(tools, archive.PathOf(BackupManifest.DumpFile), connectionString, step, cancellationToken);
            }
        });

        var counts = await steps.RunAsync("Compare row counts with the manifest", async step =>
        {
            var counted = await CountRowsAsync(checks, archive.Manifest.RowCounts, cancellationToken);
            var wrong = counted.Where(c => !c.Matches).ToList();
            if (wrong.Count > 0)
            {
                throw new BackupFailedException("Row counts differ from the manifest: " +
                    string.Join(", ", wrong.Select(c => $"{c.Table} {c.Restored} (manifest {c.Expected})")));
            }

            step.Detail = $"{counted.Count} tables, {counted.Sum(c => c.Restored)} rows, all match";
            return counted;
        });

        var applied = await steps.RunAsync("Apply pending migrations", async step =>
        {
            // Building EF's model costs about a second; the common case (archive from this version) needs none of it.
            var pending = KnownMigrations().Except(await AppliedMigrationsAsync(checks, cancellationToken)).Order(StringComparer.Ordinal).ToList();
            if (pending.Count > 0)
            {
                await using var db = Context(connectionString);
                await db.Database.MigrateAsync(cancellationToken);
            }

            step.Detail = pending.Count == 0 ? "schema already current" : "applied " + string.Join(", ", pending);
            return pending;
        });
        var duration = Stopwatch.GetElapsedTime(started);

        var recorded = (await checks.RunAsync(BackupRunLog.RestoredInPsql(clock.GetUtcNow(), archive.ArchiveSize, archive.Manifest), cancellationToken)) is ["t"];

        if (!recorded)
        {
            steps.Note("note: the restored schema has no backup_runs table; this restore is not recorded.");
        }

        // libvirt is left alone unless asked (--redefine-domains).
        var redefined = request.RedefineDomainsUri is { } uri
            ? await steps.RunAsync("Redefine missing libvirt domains", step => RedefineAsync(archive, connectionString, uri, step, cancellationToken))
            : [];
        string? configPath = null;
        if (request.ConfigOutputDir is { } configDir && archive.Contains(BackupManifest.ConfigFile))
        {
            configPath = await steps.RunAsync("Write the archived configuration for review", step =>
            {
                var dir = BackupArchive.EnsurePrivateDirectory(configDir);
                var file = Path.Combine(dir, $"restored-config-{archive.Manifest.CreatedAt.UtcDateTime:yyyyMMdd'T'HHmmss'Z'}.json");
                File.Copy(archive.PathOf(BackupManifest.ConfigFile), file, overwrite: true);
                File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);
                step.Detail = $"{file} (secrets redacted; merge by hand — the running configuration is not changed)";
                return Task.FromResult<string?>(file);
            });
        }

        return new RestoreResult(counts, applied, duration, redefined, configPath);
    }

    /// <summary>
    /// Loads a fresh target (<see cref="TargetState.FreshPublicSchema"/>, refusal rules applied by
    /// <paramref name="mayLoad"/>) from the dump as verification writes it out: pg_restore in one
    /// transaction, reading <paramref name="feed"/>, which holds back the dump's last bytes until the
    /// whole archive is proven good. Rejected: pg_restore is killed before it could commit, and the
    /// server rolls back. Completes once the inspection has answered: with the load under way, or with
    /// null, having loaded nothing, for a target that must not be loaded early.
    /// </summary>
    /// <remarks>
    /// pg_restore is started before the target's inspection answers, so its start is off the way to
    /// the load (about 20 ms). That is safe: it reads the dump's table of contents before it connects,
    /// and it is given no byte of the dump unless <paramref name="mayLoad"/> agreed; otherwise it is
    /// killed unconnected. It is the tools' oldest pg_restore, as the inspection's psql; one older than
    /// the server is replaced (<see cref="PgTools.ResolveAsync"/>'s rule, applied with the server's major).
    /// </remarks>
    public static async Task<Task?> LoadWhileVerifyingAsync(
        Task<TargetState> inspecting, Func<TargetState, bool> mayLoad, string? pgBinDir, DumpFeed feed, string connectionString, CancellationToken cancellationToken)
    {
        var environment = PgTools.Environment(WithApplicationName(connectionString), ApplicationName);
        Process Start(PgTools tools) => PgTools.Start(tools.PgRestore, RestoreIntoArguments(environment), environment, redirectInput: true);
        var tools = await PgTools.ResolveAsync(pgBinDir, 0, cancellationToken);
        var restore = Start(tools);
        try
        {
            var target = await inspecting;
            if (!target.FreshPublicSchema || !mayLoad(target))
            {
                await KillAsync(restore);
                return null;
            }

            if (tools.Major < target.ServerMajor)
            {
                // Resolved and started before the old one goes, so a failure leaves one process for the catch below.
                var older = restore;
                restore = Start(await PgTools.ResolveAsync(pgBinDir, target.ServerMajor, cancellationToken));
                await KillAsync(older);
            }
        }
        catch
        {
            // The inspection failed (the caller reports it) or no suitable pg_restore: nothing was fed.
            await KillAsync(restore);
            throw;
        }

        return FeedAsync(restore, feed, cancellationToken);
    }

    /// <summary>Writes the dump to pg_restore as it is verified and waits for the commit; pg_restore is never left running.</summary>
    private static async Task FeedAsync(Process restore, DumpFeed feed, CancellationToken cancellationToken)
    {
        try
        {
            var output = restore.StandardOutput.ReadToEndAsync(cancellationToken);
            var errors = restore.StandardError.ReadToEndAsync(cancellationToken);
            try
            {
                await feed.CopyToAsync(restore.StandardInput.BaseStream, cancellationToken);
                restore.StandardInput.Close();
            }
            catch (IOException)
            {
                // pg_restore stopped reading: it failed, and says why below.
            }

            await PgTools.WaitAsync(restore, cancellationToken);
            if (restore.ExitCode != 0)
            {
                throw new BackupFailedException(
                    $"pg_restore failed (exit code {restore.ExitCode}): {PgTools.Tail(await output + await errors)}; the transaction was rolled back, nothing was restored.");
            }
        }
        finally
        {
            // Rejected or cancelled: killed before it could commit.
            await KillAsync(restore);
        }
    }

    /// <summary>Kills <paramref name="process"/> if it still runs, and releases it.</summary>
    private static async Task KillAsync(Process process)
    {
        using (process)
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync(CancellationToken.None);
            }
        }
    }

    private static string[] RestoreIntoArguments(Dictionary<string, string> environment) =>
        ["--no-owner", "--no-acl", "--exit-on-error", "--single-transaction", "--no-password", "--dbname=" + environment["PGDATABASE"]];

    /// <summary>
    /// An empty target needs nothing dropped first, so pg_restore loads it itself in one transaction
    /// (--single-transaction: all or nothing, as below). It sends the COPY data straight to the
    /// server; the path through psql below costs about a quarter more time on a large dump (psql
    /// reads every COPY line).
    /// </summary>
    private static async Task LoadIntoEmptyAsync(PgTools tools, string dumpPath, string connectionString, StepProgress step, CancellationToken cancellationToken)
    {
        var environment = PgTools.Environment(connectionString, ApplicationName);
        var (exitCode, output) = await PgTools.RunAsync(tools.PgRestore, [.. RestoreIntoArguments(environment), dumpPath], environment, cancellationToken);
        if (exitCode != 0)
        {
            throw new BackupFailedException($"pg_restore failed (exit code {exitCode}): {output}; the transaction was rolled back, nothing was restored.");
        }

        step.Detail = $"{BackupCreator.Size(new FileInfo(dumpPath).Length)} of dump loaded and committed";
    }

    /// <summary>
    /// pg_restore renders the dump as SQL; psql applies it inside BEGIN … COMMIT that we write
    /// around it. COMMIT is sent only after pg_restore succeeded; otherwise psql is killed and the
    /// server rolls the whole transaction back, so the target is never left half-restored.
    /// </summary>
    private static async Task LoadAsync(PgTools tools, string dumpPath, string connectionString, StepProgress step, CancellationToken cancellationToken)
    {
        using var psql = PgTools.Start(tools.Psql, ["--no-psqlrc", "--quiet", "--no-password", "--set=ON_ERROR_STOP=1"],
            PgTools.Environment(connectionString, ApplicationName), redirectInput: true);
        using var restore = PgTools.Start(tools.PgRestore, ["--no-owner", "--no-acl", "--exit-on-error", "--file=-", dumpPath], null);
        var psqlOutput = psql.StandardOutput.BaseStream.CopyToAsync(Stream.Null, cancellationToken);
        var psqlErrors = psql.StandardError.ReadToEndAsync(cancellationToken);
        var restoreErrors = restore.StandardError.ReadToEndAsync(cancellationToken);
        var input = psql.StandardInput.BaseStream;
        var committed = false;
        long copied = 0;
        try
        {
            await input.WriteAsync("""
                SET client_min_messages = warning;
                BEGIN;
                DROP SCHEMA IF EXISTS public CASCADE;
                CREATE SCHEMA public;

                """u8.ToArray(), cancellationToken);
            var total = Math.Max(1, new FileInfo(dumpPath).Length);
            var buffer = new byte[1 << 20];
            int read;
            var source = restore.StandardOutput.BaseStream;
            while ((read = await source.ReadAsync(buffer, cancellationToken)) > 0)
            {
                await input.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                copied += read;
                // SQL text is about as long as an uncompressed custom dump: a fair estimate, capped below done.
                step.Report(Math.Min(0.99, (double)copied / total));
            }

            await PgTools.WaitAsync(restore, cancellationToken);
            if (restore.ExitCode != 0)
            {
                throw new BackupFailedException($"pg_restore failed (exit code {restore.ExitCode}): {PgTools.Tail(await restoreErrors)}; nothing was restored.");
            }

            await input.WriteAsync("COMMIT;\n"u8.ToArray(), cancellationToken);
            input.Close();
            committed = true;
            await PgTools.WaitAsync(psql, cancellationToken);
            await psqlOutput;
            if (psql.ExitCode != 0)
            {
                throw new BackupFailedException($"psql failed (exit code {psql.ExitCode}): {PgTools.Tail(await psqlErrors)}; the transaction was rolled back, nothing was restored.");
            }

            step.Report(1);
            step.Detail = $"{BackupCreator.Size(copied)} of SQL applied and committed";
        }
        catch (IOException e) when (!psql.HasExited || psql.ExitCode != 0)
        {
            // psql stopped reading: it hit an error (ON_ERROR_STOP) and rolled back.
            await psql.WaitForExitAsync(CancellationToken.None);
            throw new BackupFailedException($"psql stopped (exit code {psql.ExitCode}): {PgTools.Tail(await psqlErrors)}; nothing was restored.", e);
        }
        finally
        {
            if (!committed && !psql.HasExited)
            {
                // Dropping the connection mid-transaction makes PostgreSQL roll it back.
                psql.Kill(entireProcessTree: true);
            }

            if (!restore.HasExited)
            {
                restore.Kill(entireProcessTree: true);
            }
        }
    }

    /// <summary>Each table of the manifest counted; -1 for one the restored database does not have.</summary>
    private static async Task<List<RowCountCheck>> CountRowsAsync(PsqlSession session, IReadOnlyDictionary<string, long> expected, CancellationToken cancellationToken)
    {
        var existing = (await session.RunAsync("SELECT tablename FROM pg_tables WHERE schemaname = 'public';", cancellationToken)).ToHashSet(StringComparer.Ordinal);
        var present = expected.Keys.Where(existing.Contains).Order(StringComparer.Ordinal).ToList();
        // One statement per table, one line each, in this order (a quoted identifier is never interpolated by psql).
        var counts = present.Count == 0 ? [] : await session.RunAsync(string.Join('\n', present.Select(t => $"SELECT count(*) FROM public.{BackupCreator.Quote(t)};")), cancellationToken);
        var restored = present.Zip(counts, (table, count) => (table, long.Parse(count, CultureInfo.InvariantCulture))).ToDictionary(c => c.table, c => c.Item2, StringComparer.Ordinal);
        return [.. expected.OrderBy(e => e.Key, StringComparer.Ordinal).Select(e => new RowCountCheck(e.Key, e.Value, restored.GetValueOrDefault(e.Key, -1)))];
    }

    private static async Task<List<Guid>> RedefineAsync(ExtractedArchive archive, string connectionString, string uri, StepProgress step, CancellationToken cancellationToken)
    {
        var vmIds = new HashSet<Guid>();
        await using (var connection = new NpgsqlConnection(connectionString))
        {
            await connection.OpenAsync(cancellationToken);
            // Only the VMs of the host at this URI: another host's domains belong on that host.
            await using var command = new NpgsqlCommand("SELECT v.id FROM vms v JOIN hosts h ON h.id = v.host_id WHERE h.uri = @uri", connection);
            command.Parameters.AddWithValue("uri", uri);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                vmIds.Add(reader.GetGuid(0));
            }
        }

        var archived = archive.Manifest.Files
            .Where(f => f.Path.StartsWith(BackupManifest.DomainsDir + "/", StringComparison.Ordinal) && f.Path.EndsWith(".xml", StringComparison.Ordinal))
            .Select(f => (Path: f.Path, Id: Guid.TryParse(System.IO.Path.GetFileNameWithoutExtension(f.Path), out var id) ? id : Guid.Empty))
            .Where(d => vmIds.Contains(d.Id))
            .ToList();
        var redefined = new List<Guid>();
        await Task.Run(() =>
        {
            LibvirtConnection libvirt;
            try
            {
                libvirt = LibvirtConnection.Open(uri);
            }
            catch (LibvirtException e)
            {
                throw new BackupFailedException($"libvirt at {uri} is unavailable: {e.Message}; the database was restored, the domains were not redefined.", e);
            }

            using (libvirt)
            {
                foreach (var (path, id) in archived)
                {
                    using var existing = libvirt.LookupDomainByUuid(id);
                    if (existing is null)
                    {
                        libvirt.DefineDomain(File.ReadAllText(archive.PathOf(path))).Dispose();
                        redefined.Add(id);
                    }
                }
            }
        }, cancellationToken);
        step.Detail = $"defined {redefined.Count}, {archived.Count - redefined.Count} already present (their disks must exist before they start)";
        return redefined;
    }

    /// <summary>EF's migration history; empty for a dump without any Limen schema (every migration is pending).</summary>
    private static async Task<HashSet<string>> AppliedMigrationsAsync(PsqlSession session, CancellationToken cancellationToken) =>
        new(await session.RunAsync("""
            SELECT to_regclass('public."__EFMigrationsHistory"') IS NOT NULL AS limen_has_history \gset
            \if :limen_has_history
            SELECT migration_id FROM "__EFMigrationsHistory";
            \endif
            """, cancellationToken), StringComparer.Ordinal);

    public static LimenDbContext Context(string connectionString) =>
        new(new DbContextOptionsBuilder<LimenDbContext>().UseNpgsql(connectionString).UseSnakeCaseNamingConvention().Options);

    /// <summary>The migrations compiled into this Limen, read from their attributes (building the EF model just for this costs a second).</summary>
    private static HashSet<string> KnownMigrations() =>
    [
        .. typeof(LimenDbContext).Assembly.GetTypes()
            .Select(t => t.GetCustomAttributes(typeof(Microsoft.EntityFrameworkCore.Migrations.MigrationAttribute), inherit: false)
                .Cast<Microsoft.EntityFrameworkCore.Migrations.MigrationAttribute>().FirstOrDefault()?.Id)
            .OfType<string>(),
    ];

    private static string WithApplicationName(string connectionString) =>
        new NpgsqlConnectionStringBuilder(connectionString) { ApplicationName = ApplicationName }.ConnectionString;
}
