using Npgsql;

namespace Limen.Features.Backup;

/// <summary>A step failed; the message says which and why, in words an operator can act on.</summary>
public class BackupFailedException(string message, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>One line for an operator: our own messages as they are, others with their root cause.</summary>
    public static string Describe(Exception e) => e switch
    {
        BackupFailedException => e.Message,
        Hosts.HypervisorUnavailableException => e.Message,
        PostgresException pg => $"PostgreSQL: {pg.MessageText} ({pg.SqlState})",
        NpgsqlException => "PostgreSQL: " + e.GetBaseException().Message,
        OperationCanceledException => "cancelled",
        _ => e.GetBaseException().Message,
    };
}

/// <summary>The archive is not one we can trust (damaged, truncated, altered, unknown format, not ours); nothing was touched.</summary>
public sealed class ArchiveRejectedException(string message) : BackupFailedException(message);

/// <summary>Restore declined to touch the target (not empty, in use by limen serve); nothing was touched.</summary>
public sealed class RestoreRefusedException(string message) : BackupFailedException(message);
