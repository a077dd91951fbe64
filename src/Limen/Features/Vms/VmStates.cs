using Limen.Libvirt;

namespace Limen.Features.Vms;

/// <summary>The VM states and the rules between them, in one place.</summary>
public static class VmStates
{
    public const string Creating = "creating";
    public const string Stopped = "stopped";
    public const string Running = "running";
    public const string Paused = "paused";
    public const string ShuttingDown = "shutting_down";
    public const string Error = "error";
    /// <summary>The domain vanished behind Limen's back; the row stays until someone decides.</summary>
    public const string Missing = "missing";
    /// <summary>Written before a delete touches libvirt, so a delete cut short is finished by recovery.</summary>
    public const string Deleting = "deleting";
    /// <summary>Moving to another host (<see cref="Migration.MigrationService"/>); the row names the source host until the move is done.</summary>
    public const string Migrating = "migrating";
    /// <summary>
    /// Its host does not answer (state reason: the host's error): the VM may be running or not, so it
    /// is neither deleted nor recreated elsewhere; when the host answers again it is what libvirt shows.
    /// </summary>
    public const string Unknown = "unknown";

    public static readonly IReadOnlyList<string> All = [Creating, Stopped, Running, Paused, ShuttingDown, Error, Missing, Deleting, Unknown, Migrating];

    /// <summary>
    /// Creating, deleting and migrating are an operation's intent, not something libvirt reports: while
    /// a row is in one of them only that operation or the recovery after it (<see cref="VmRecovery"/>) may change it.
    /// </summary>
    public static bool IsPending(string state) => state is Creating or Deleting or Migrating;

    /// <summary>The states a VM is migrated from: live when it runs (or is paused), offline when stopped.</summary>
    public static bool CanMigrate(string state) => state is Running or Paused or Stopped;

    /// <summary>What libvirt can show a domain as (<see cref="FromDomain"/>), or its absence: missing.</summary>
    public static readonly IReadOnlyList<string> Observable = [Running, Paused, ShuttingDown, Stopped, Error, Missing];

    /// <summary>What libvirt's view means for a VM's row: a vanished domain (null) makes it missing.</summary>
    public static string FromObserved(DomainState? observed) => observed is { } state ? FromDomain(state) : Missing;

    /// <summary>What libvirt's domain state means for a VM.</summary>
    public static string FromDomain(DomainState state) => state switch
    {
        DomainState.Running or DomainState.Blocked => Running,
        DomainState.Paused or DomainState.PMSuspended => Paused,
        DomainState.Shutdown => ShuttingDown,
        DomainState.Shutoff => Stopped,
        DomainState.Crashed => Error,
        _ => Error,
    };
}

public enum VmAction
{
    Start,
    Shutdown,
    Stop,
    Reboot,
    Suspend,
    Resume,
}

public enum ActionPlan
{
    /// <summary>The end state already holds: answer 200 without touching libvirt.</summary>
    NoOp,
    Perform,
    /// <summary>Impossible from the current state: 409.</summary>
    Conflict,
}

public static class VmActions
{
    private static readonly Dictionary<string, VmAction> ByName =
        Enum.GetValues<VmAction>().ToDictionary(a => a.ToString().ToLowerInvariant());

    public static IEnumerable<string> Names => ByName.Keys;

    public static bool TryParse(string text, out VmAction action) => ByName.TryGetValue(text, out action);

    /// <summary>The transition table: for each action, the states it runs from and the state that makes it a no-op.</summary>
    public static ActionPlan Plan(VmAction action, string state) => (action, state) switch
    {
        (VmAction.Start, VmStates.Running) => ActionPlan.NoOp,
        (VmAction.Start, VmStates.Stopped) => ActionPlan.Perform,
        (VmAction.Shutdown or VmAction.Stop, VmStates.Stopped) => ActionPlan.NoOp,
        (VmAction.Shutdown, VmStates.Running or VmStates.ShuttingDown) => ActionPlan.Perform,
        (VmAction.Stop, VmStates.Running or VmStates.Paused or VmStates.ShuttingDown or VmStates.Error) => ActionPlan.Perform,
        (VmAction.Reboot, VmStates.Running) => ActionPlan.Perform,
        (VmAction.Suspend, VmStates.Paused) => ActionPlan.NoOp,
        (VmAction.Suspend, VmStates.Running) => ActionPlan.Perform,
        (VmAction.Resume, VmStates.Running) => ActionPlan.NoOp,
        (VmAction.Resume, VmStates.Paused) => ActionPlan.Perform,
        _ => ActionPlan.Conflict,
    };

    /// <summary>The state an action that was performed ends in (a shutdown waits for the guest to power off).</summary>
    public static string EndState(VmAction action) => action switch
    {
        VmAction.Start or VmAction.Resume or VmAction.Reboot => VmStates.Running,
        VmAction.Suspend => VmStates.Paused,
        _ => VmStates.Stopped,
    };
}

/// <summary>What may move a VM's state; <see cref="VmTransitions"/> says which moves each one may make.</summary>
public enum VmStateCause
{
    /// <summary>A create that got through libvirt: creating → running or stopped.</summary>
    Create,
    /// <summary>An API action performed on the domain.</summary>
    Action,
    /// <summary>The row follows what libvirt shows (a lifecycle event, the sweep, a read by an operation).</summary>
    Observation,
    SnapshotRevert,
    /// <summary>Finishing what a server left half done (<see cref="VmRecovery"/>, <see cref="Snapshots.SnapshotRecovery"/>).</summary>
    Recovery,
    /// <summary>A delete records its intent before it touches libvirt.</summary>
    Delete,
    /// <summary>The VM's host stopped answering: settled → unknown.</summary>
    HostDown,
    /// <summary>libvirt refused the delete: the VM is back in the state it had.</summary>
    DeleteFailed,
    /// <summary>A migration records its intent (running, paused or stopped → migrating) before it touches either host.</summary>
    MigrationStart,
    /// <summary>A migration ended (done, failed or settled by recovery): migrating → what the host it is on shows.</summary>
    MigrationEnd,
}

/// <summary>
/// Why a VM's state changed: the cause the table checks and the short machine word
/// (<c>reason</c> of <c>vm.state_changed</c>) clients see.
/// </summary>
public readonly record struct VmStateReason(VmStateCause Cause, string Word, VmAction? Action = null)
{
    public static readonly VmStateReason Create = new(VmStateCause.Create, "create");
    /// <summary>The reconciler, woken by a libvirt lifecycle event about this VM's domain.</summary>
    public static readonly VmStateReason LibvirtEvent = new(VmStateCause.Observation, "libvirt.event");
    /// <summary>The reconciler's sweep (an event missed while libvirtd was away, or none raised).</summary>
    public static readonly VmStateReason Reconcile = new(VmStateCause.Observation, "reconcile");
    /// <summary>An operation read the domain's state (an action looks before it acts, and after it failed).</summary>
    public static readonly VmStateReason Observed = new(VmStateCause.Observation, "observed");
    public static readonly VmStateReason SnapshotRevert = new(VmStateCause.SnapshotRevert, "snapshot.revert");
    public static readonly VmStateReason Recovery = new(VmStateCause.Recovery, "recovery");
    public static readonly VmStateReason Delete = new(VmStateCause.Delete, "delete");
    public static readonly VmStateReason DeleteFailed = new(VmStateCause.DeleteFailed, "delete.failed");
    public static readonly VmStateReason Migration = new(VmStateCause.MigrationStart, "migration");
    /// <summary>The VM now runs on (or is defined on) its new host.</summary>
    public static readonly VmStateReason Migrated = new(VmStateCause.MigrationEnd, "migration.completed");
    /// <summary>The migration failed; the VM stays on its source host.</summary>
    public static readonly VmStateReason MigrationFailed = new(VmStateCause.MigrationEnd, "migration.failed");
    public static readonly VmStateReason HostDown = new(VmStateCause.HostDown, "host.down");

    public static VmStateReason For(VmAction action) => new(VmStateCause.Action, "action." + action.ToString().ToLowerInvariant(), action);
}

/// <summary>
/// The transition table: which from → to each cause may make (docs/architecture.md, "VM state
/// machine"). A state that stays the same is no transition and always allowed.
/// </summary>
public static class VmTransitions
{
    private static readonly string[] Settled = [.. VmStates.All.Where(s => !VmStates.IsPending(s))];

    public static bool IsAllowed(string from, string to, VmStateReason reason) => from == to || reason.Cause switch
    {
        VmStateCause.Create => from == VmStates.Creating && to is VmStates.Running or VmStates.Stopped,
        // Exactly the actions' own table: an action moves only from where it is performed, to where it ends.
        VmStateCause.Action => reason.Action is { } action && VmActions.Plan(action, from) == ActionPlan.Perform && to == VmActions.EndState(action),
        // libvirt is the truth for a settled VM; a pending one belongs to its operation or recovery.
        VmStateCause.Observation => Settled.Contains(from) && VmStates.Observable.Contains(to),
        VmStateCause.SnapshotRevert => Settled.Contains(from) && from is not (VmStates.Missing or VmStates.Unknown) && to is VmStates.Running or VmStates.Paused or VmStates.Stopped,
        // A create whose domain and disk exist is completed as libvirt shows it; a revert cut short is redone.
        VmStateCause.Recovery => from == VmStates.Creating ? VmStates.Observable.Contains(to) && to != VmStates.Missing
            : Settled.Contains(from) && to is VmStates.Running or VmStates.Paused or VmStates.Stopped,
        VmStateCause.Delete => to == VmStates.Deleting,
        VmStateCause.DeleteFailed => from == VmStates.Deleting,
        VmStateCause.MigrationStart => VmStates.CanMigrate(from) && to == VmStates.Migrating,
        VmStateCause.MigrationEnd => from == VmStates.Migrating && VmStates.Observable.Contains(to),
        // Only what libvirt can show becomes unknown; an operation's intent stays for its recovery.
        VmStateCause.HostDown => Settled.Contains(from) && to == VmStates.Unknown,
        _ => false,
    };
}
