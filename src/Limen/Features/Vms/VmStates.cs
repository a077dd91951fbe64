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

    public static readonly IReadOnlyList<string> All = [Creating, Stopped, Running, Paused, ShuttingDown, Error, Missing, Deleting];

    /// <summary>
    /// Creating and deleting are an operation's intent, not something libvirt reports: while a row is
    /// in one of them only that operation or the recovery after it (<see cref="VmRecovery"/>) may change it.
    /// </summary>
    public static bool IsPending(string state) => state is Creating or Deleting;

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
}
