namespace Limen.Features.Events;

/// <summary>The event catalogue (docs/api.md, "Events"). Clients switch on these names.</summary>
public static class EventTypes
{
    public const string VmCreated = "vm.created";
    public const string VmUpdated = "vm.updated";
    public const string VmDeleted = "vm.deleted";
    /// <summary>{vm_id, from, to, reason, at}: every change of a VM's state, whoever made it.</summary>
    public const string VmStateChanged = "vm.state_changed";
    /// <summary>{vm_id, migration_id, source_host_id, target_host_id, data_total, data_processed, data_remaining}: a live migration under way.</summary>
    public const string VmMigrationProgress = "vm.migration.progress";
    public const string SnapshotCreated = "snapshot.created";
    public const string SnapshotReverted = "snapshot.reverted";
    public const string SnapshotDeleted = "snapshot.deleted";
    public const string ConsoleSessionOpened = "console.session.opened";
    public const string ConsoleSessionClosed = "console.session.closed";
    /// <summary>An admin asked for a session to end; the server relaying it closes it.</summary>
    public const string ConsoleSessionTerminateRequested = "console.session.terminate_requested";
    public const string QuotaChanged = "quota.changed";
    public const string AlertReceived = "alert.received";
    public const string HostUp = "host.up";
    public const string HostDown = "host.down";
    /// <summary>{host_id, name}: an admin added a host; every server opens it (<see cref="Hosts.HostEventConsumer"/>).</summary>
    public const string HostAdded = "host.added";
    /// <summary>{host_id, name}: an admin removed a host (it had no VMs); every server closes it.</summary>
    public const string HostRemoved = "host.removed";
    /// <summary>{host_id, name, mode}: a host went into maintenance or back to active.</summary>
    public const string HostModeChanged = "host.mode_changed";
    /// <summary>{user_id, username}: somebody registered; the account waits for an admin.</summary>
    public const string RegistrationCreated = "registration.created";
    public const string RegistrationApproved = "registration.approved";
    public const string RegistrationRejected = "registration.rejected";
    /// <summary>{before, after}: an admin changed the run-time settings.</summary>
    public const string SettingsChanged = "settings.changed";
}

/// <summary>
/// An event about to be emitted. <paramref name="OwnerId"/> decides who may see it (that user and
/// admins; null = admins only). <paramref name="Data"/> is serialized snake_case into the stream.
/// </summary>
public sealed record EventDraft(string Type, Guid? OwnerId, Guid? VmId, object Data);
