namespace Limen.Data;

public static class BackupRunKinds
{
    public const string Backup = "backup";
    public const string Restore = "restore";
    public const string Drill = "drill";
}

public static class BackupRunStatuses
{
    public const string Running = "running";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";
}

/// <summary>
/// One `limen backup`, `restore` or `drill` run. Written when the run starts and completed when it
/// ends, so a crashed run stays visible as "running"; the backup and drill metrics read the newest
/// succeeded row of their kind.
/// </summary>
public sealed class BackupRun
{
    public Guid Id { get; set; }
    /// <summary>backup | restore | drill.</summary>
    public required string Kind { get; set; }
    /// <summary>running | succeeded | failed.</summary>
    public required string Status { get; set; }
    public DateTimeOffset StartedAt { get; set; }
    public DateTimeOffset? FinishedAt { get; set; }
    /// <summary>The archive written (backup) or read (restore, drill).</summary>
    public string? ArchivePath { get; set; }
    public long? ArchiveSizeBytes { get; set; }
    /// <summary>The drill's evidence report (JSON).</summary>
    public string? ReportPath { get; set; }
    /// <summary>Why it failed; never holds secrets.</summary>
    public string? Error { get; set; }
    /// <summary>Machine that ran it.</summary>
    public required string Hostname { get; set; }
}
