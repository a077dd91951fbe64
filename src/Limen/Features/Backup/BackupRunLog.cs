using Limen.Data;
using Npgsql;

namespace Limen.Features.Backup;

/// <summary>
/// Writes backup_runs rows with plain SQL rather than EF: a backup must work on a database whose
/// schema is older than the table (then the run is simply not recorded, and the caller says so).
/// </summary>
public static class BackupRunLog
{
    /// <summary>Inserts a "running" row; null when the table does not exist yet.</summary>
    public static async Task<Guid?> StartAsync(string connectionString, string kind, DateTimeOffset startedAt, CancellationToken cancellationToken)
    {
        var id = Guid.NewGuid();
        const string sql = "INSERT INTO backup_runs (id, kind, status, started_at, hostname) VALUES (@id, @kind, @status, @started, @host)";
        return await ExecuteAsync(connectionString, sql, cancellationToken,
            ("id", id), ("kind", kind), ("status", BackupRunStatuses.Running), ("started", startedAt), ("host", Environment.MachineName)) ? id : null;
    }

    /// <summary>
    /// <see cref="StartAsync"/> as psql commands, for the backup's own psql session (see
    /// <see cref="PsqlSession"/>; a backup spends no time on Npgsql's first connection). The values
    /// are psql variables set when the session starts (<see cref="PsqlVariables"/>); it prints "t"
    /// when the row was written, "f" when the schema has no backup_runs table yet.
    /// </summary>
    public const string StartInPsql = """
        SELECT to_regclass('public.backup_runs') IS NOT NULL AS limen_has_runs \gset
        \if :limen_has_runs
        INSERT INTO backup_runs (id, kind, status, started_at, hostname) VALUES (:'limen_run_id', :'limen_run_kind', 'running', :'limen_run_started', :'limen_run_host');
        \endif
        \echo :limen_has_runs
        """;

    /// <summary>The succeeded half of <see cref="FinishAsync"/> for the same session, after <see cref="StartInPsql"/>.</summary>
    public static string SucceededInPsql(DateTimeOffset finishedAt, long archiveSize) => $"""
        \set limen_run_finished '{finishedAt:O}'
        \if :limen_has_runs
        UPDATE backup_runs SET status = 'succeeded', finished_at = :'limen_run_finished', archive_path = :'limen_run_archive', archive_size_bytes = {archiveSize} WHERE id = :'limen_run_id';
        \endif
        """;

    public static Dictionary<string, string> PsqlVariables(Guid id, string kind, DateTimeOffset startedAt, string archivePath) => new()
    {
        ["limen_run_id"] = id.ToString(),
        ["limen_run_kind"] = kind,
        ["limen_run_started"] = startedAt.ToString("O", System.Globalization.CultureInfo.InvariantCulture),
        ["limen_run_host"] = Environment.MachineName,
        ["limen_run_archive"] = archivePath,
    };

    public static Task<bool> FinishAsync(
        string connectionString, Guid id, bool succeeded, DateTimeOffset finishedAt, string? archivePath, long? archiveSize, string? reportPath, string? error,
        CancellationToken cancellationToken)
    {
        const string sql = """
            UPDATE backup_runs SET status = @status, finished_at = @finished, archive_path = @archive, archive_size_bytes = @size,
                report_path = @report, error = @error
            WHERE id = @id
            """;
        return ExecuteAsync(connectionString, sql, cancellationToken,
            ("id", id), ("status", succeeded ? BackupRunStatuses.Succeeded : BackupRunStatuses.Failed), ("finished", finishedAt),
            ("archive", archivePath), ("size", archiveSize), ("report", reportPath), ("error", error));
    }

    /// <summary>
    /// A restore's own run, in one finished row, and the restored archive's run marked succeeded:
    /// that run was still "running" inside its snapshot; once its archive has been restored it has
    /// demonstrably succeeded, so the restored database says so (and its backup-age metric starts
    /// from that archive instead of "never"). psql commands for the restore's session, with the
    /// variables of <see cref="PsqlVariables"/>; they print "t" when recorded, "f" when the
    /// restored schema has no backup_runs table.
    /// </summary>
    public static string RestoredInPsql(DateTimeOffset finishedAt, long archiveSize, BackupManifest archive) => $"""
        \set limen_run_finished '{finishedAt:O}'
        SELECT to_regclass('public.backup_runs') IS NOT NULL AS limen_has_runs \gset
        \if :limen_has_runs
        INSERT INTO backup_runs (id, kind, status, started_at, finished_at, archive_path, archive_size_bytes, hostname)
        VALUES (:'limen_run_id', :'limen_run_kind', 'succeeded', :'limen_run_started', :'limen_run_finished', :'limen_run_archive', {archiveSize}, :'limen_run_host');
        {(archive.BackupRunId is { } runId ? $"""
            UPDATE backup_runs SET status = 'succeeded', finished_at = '{archive.CreatedAt:O}', archive_path = :'limen_run_archive', archive_size_bytes = {archiveSize}
            WHERE id = '{runId}' AND status = 'running';
            """ : "")}
        \endif
        \echo :limen_has_runs
        """;

    /// <summary>Finished time of the newest succeeded run of <paramref name="kind"/>, or null (never).</summary>
    public static async Task<DateTimeOffset?> LastSuccessAsync(NpgsqlConnection connection, string kind, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            "SELECT max(finished_at) FROM backup_runs WHERE kind = @kind AND status = 'succeeded'", connection);
        command.Parameters.AddWithValue("kind", kind);
        return await command.ExecuteScalarAsync(cancellationToken) is DateTime time ? new DateTimeOffset(time, TimeSpan.Zero) : null;
    }

    private static async Task<bool> ExecuteAsync(string connectionString, string sql, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters)
    {
        try
        {
            await using var connection = new NpgsqlConnection(connectionString);
            await connection.OpenAsync(cancellationToken);
            await using var command = new NpgsqlCommand(sql, connection);
            foreach (var (name, value) in parameters)
            {
                command.Parameters.AddWithValue(name, value ?? DBNull.Value);
            }

            return await command.ExecuteNonQueryAsync(cancellationToken) > 0;
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UndefinedTable)
        {
            return false;
        }
    }
}
