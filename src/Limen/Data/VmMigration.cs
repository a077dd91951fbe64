namespace Limen.Data;

/// <summary>
/// One move of a VM from one host to another (<c>POST /api/vms/{id}/actions/migrate</c>, or a drain).
/// Written before either host is touched, so a migration cut short (the server killed) is settled by
/// recovery from where the domain turned out to be; kept afterwards as the VM's migration history.
/// </summary>
public sealed class VmMigration
{
    public Guid Id { get; set; }
    public Guid VmId { get; set; }
    public Guid SourceHostId { get; set; }
    public Guid TargetHostId { get; set; }
    /// <summary><c>live</c> (the VM keeps running) or <c>offline</c> (a stopped VM's definition and disk move).</summary>
    public required string Mode { get; set; }
    /// <summary><c>shared</c> (both hosts reach the same disk folder) or <c>copy</c> (the disk is copied to the target's folder).</summary>
    public required string Storage { get; set; }
    /// <summary><see cref="Features.Migration.MigrationResults"/>: running, completed, failed.</summary>
    public required string Result { get; set; }
    public string? Error { get; set; }
    public DateTimeOffset StartedAt { get; set; }
    public DateTimeOffset? FinishedAt { get; set; }
    /// <summary>Bytes libvirt's job reported in all and still to send, as last seen.</summary>
    public long? DataTotal { get; set; }
    public long? DataRemaining { get; set; }
    /// <summary>How long the guest was paused for the switch-over, from the target's completed job.</summary>
    public long? DowntimeMs { get; set; }
    /// <summary>The target was down when the migration failed: its half-made domain is removed when it answers again.</summary>
    public bool TargetCleanupPending { get; set; }
}
