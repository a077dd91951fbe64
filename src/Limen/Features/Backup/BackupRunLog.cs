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

    /// <summary>A finished run in one row (restore records itself this way, after the data it replaced is gone).</summary>
    public static Task<bool> RecordAsync(
        string connectionString, string kind, bool succeeded, DateTimeOffset startedAt, DateTimeOffset finishedAt, string? archivePath, long? archiveSize,
        CancellationToken cancellationToken)
    {
        const string sql = """
            INSERT INTO backup_runs (id, kind, status, started_at, finished_at, archive_path, archive_size_bytes, hostname)
            VALUES (@id, @kind, @status, @started, @finished, @archive, @size, @host)
            """;
        return ExecuteAsync(connectionString, sql, cancellationToken,
            ("id", Guid.NewGuid()), ("kind", kind), ("status", succeeded ? BackupRunStatuses.Succeeded : BackupRunStatuses.Failed),
            ("started", startedAt), ("finished", finishedAt), ("archive", archivePath), ("size", archiveSize), ("host", Environment.MachineName));
    }

    /// <summary>
    /// The archive's own backup run was still "running" inside its snapshot; once that archive has
    /// been restored it has demonstrably succeeded, so the restored database says so (and its
    /// backup-age metric starts from that archive instead of "never").
    /// </summary>
    public static Task<bool> MarkArchiveSucceededAsync(string connectionString, Guid runId, DateTimeOffset createdAt, string archivePath, long size, CancellationToken cancellationToken)
    {
        const string sql = """
            UPDATE backup_runs SET status = @status, finished_at = @finished, archive_path = @archive, archive_size_bytes = @size
            WHERE id = @id AND status = 'running'
            """;
        return ExecuteAsync(connectionString, sql, cancellationToken,
            ("id", runId), ("status", BackupRunStatuses.Succeeded), ("finished", createdAt), ("archive", archivePath), ("size", size));
    }

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
