using Limen.Features.Vms;

namespace Limen.Tests.Vms;

/// <summary>The VM state machine's table (docs/architecture.md, "VM state machine"), pure and fast.</summary>
public sealed class VmTransitionTableTests
{
    public static TheoryData<string, string, string> Legal => new()
    {
        { VmStates.Creating, VmStates.Stopped, "create" },
        { VmStates.Creating, VmStates.Running, "create" },
        { VmStates.Stopped, VmStates.Running, "action.start" },
        { VmStates.Running, VmStates.Stopped, "action.shutdown" },
        { VmStates.ShuttingDown, VmStates.Stopped, "action.shutdown" },
        { VmStates.Running, VmStates.Stopped, "action.stop" },
        { VmStates.Paused, VmStates.Stopped, "action.stop" },
        { VmStates.Error, VmStates.Stopped, "action.stop" },
        { VmStates.ShuttingDown, VmStates.Stopped, "action.stop" },
        { VmStates.Running, VmStates.Paused, "action.suspend" },
        { VmStates.Paused, VmStates.Running, "action.resume" },
        { VmStates.Running, VmStates.Stopped, "libvirt.event" },
        { VmStates.Running, VmStates.Missing, "reconcile" },
        { VmStates.Missing, VmStates.Stopped, "reconcile" },
        { VmStates.Paused, VmStates.Error, "observed" },
        { VmStates.Stopped, VmStates.ShuttingDown, "libvirt.event" },
        { VmStates.Running, VmStates.Stopped, "snapshot.revert" },
        { VmStates.Stopped, VmStates.Paused, "snapshot.revert" },
        { VmStates.Error, VmStates.Running, "snapshot.revert" },
        { VmStates.Creating, VmStates.Running, "recovery" },
        { VmStates.Creating, VmStates.Error, "recovery" },
        { VmStates.Missing, VmStates.Stopped, "recovery" },
        { VmStates.Running, VmStates.Deleting, "delete" },
        { VmStates.Creating, VmStates.Deleting, "delete" },
        { VmStates.Missing, VmStates.Deleting, "delete" },
        { VmStates.Deleting, VmStates.Running, "delete.failed" },
        { VmStates.Deleting, VmStates.Missing, "delete.failed" },
        { VmStates.Running, VmStates.Migrating, "migration" },
        { VmStates.Paused, VmStates.Migrating, "migration" },
        { VmStates.Stopped, VmStates.Migrating, "migration" },
        { VmStates.Migrating, VmStates.Running, "migration.completed" },
        { VmStates.Migrating, VmStates.Stopped, "migration.completed" },
        { VmStates.Migrating, VmStates.Running, "migration.failed" },
        { VmStates.Migrating, VmStates.Missing, "migration.failed" },
        // A host that stops answering makes its settled VMs unknown; back, libvirt says what they are.
        { VmStates.Running, VmStates.Unknown, "host.down" },
        { VmStates.Stopped, VmStates.Unknown, "host.down" },
        { VmStates.Missing, VmStates.Unknown, "host.down" },
        { VmStates.Error, VmStates.Unknown, "host.down" },
        { VmStates.Unknown, VmStates.Running, "reconcile" },
        { VmStates.Unknown, VmStates.Missing, "reconcile" },
        { VmStates.Unknown, VmStates.Stopped, "observed" },
    };

    public static TheoryData<string, string, string> Illegal => new()
    {
        // A create ends only where its domain was left; nothing else creates.
        { VmStates.Creating, VmStates.Paused, "create" },
        { VmStates.Stopped, VmStates.Running, "create" },
        { VmStates.Creating, VmStates.Missing, "create" },
        // An action moves only from where it is performed to where it ends.
        { VmStates.Paused, VmStates.Running, "action.start" },
        { VmStates.Stopped, VmStates.Paused, "action.start" },
        { VmStates.Paused, VmStates.Stopped, "action.shutdown" },
        { VmStates.Stopped, VmStates.Running, "action.resume" },
        { VmStates.Missing, VmStates.Stopped, "action.stop" },
        { VmStates.Creating, VmStates.Running, "action.start" },
        { VmStates.Deleting, VmStates.Stopped, "action.stop" },
        // libvirt's view never moves a pending VM, and never into a pending state.
        { VmStates.Creating, VmStates.Running, "libvirt.event" },
        { VmStates.Deleting, VmStates.Missing, "reconcile" },
        { VmStates.Stopped, VmStates.Deleting, "observed" },
        { VmStates.Running, VmStates.Creating, "reconcile" },
        // A revert needs a settled VM with a domain, and ends running, paused or stopped.
        { VmStates.Missing, VmStates.Stopped, "snapshot.revert" },
        { VmStates.Deleting, VmStates.Stopped, "snapshot.revert" },
        { VmStates.Running, VmStates.Error, "snapshot.revert" },
        // Recovery completes a create as libvirt shows it (never missing) or redoes a revert.
        { VmStates.Creating, VmStates.Missing, "recovery" },
        { VmStates.Deleting, VmStates.Stopped, "recovery" },
        { VmStates.Running, VmStates.Missing, "recovery" },
        // A delete only marks its intent; only a refused delete leaves deleting.
        { VmStates.Running, VmStates.Stopped, "delete" },
        { VmStates.Running, VmStates.Stopped, "delete.failed" },
        // A migration starts only from a VM that runs, is paused or stopped, and ends where its host shows it.
        { VmStates.Error, VmStates.Migrating, "migration" },
        { VmStates.Missing, VmStates.Migrating, "migration" },
        { VmStates.Creating, VmStates.Migrating, "migration" },
        { VmStates.Running, VmStates.Stopped, "migration" },
        { VmStates.Running, VmStates.Stopped, "migration.completed" },
        { VmStates.Migrating, VmStates.Deleting, "migration.failed" },
        // Nothing else moves a migrating VM: not libvirt's view, not an action, not recovery's create/revert rules.
        { VmStates.Migrating, VmStates.Missing, "reconcile" },
        { VmStates.Migrating, VmStates.Stopped, "action.stop" },
        { VmStates.Migrating, VmStates.Running, "recovery" },
        { VmStates.Migrating, VmStates.Running, "snapshot.revert" },
        // Unknown is the host's outage only: an operation's intent stays, and nothing else leads there.
        { VmStates.Creating, VmStates.Unknown, "host.down" },
        { VmStates.Deleting, VmStates.Unknown, "host.down" },
        { VmStates.Running, VmStates.Stopped, "host.down" },
        { VmStates.Running, VmStates.Unknown, "reconcile" },
        { VmStates.Running, VmStates.Unknown, "recovery" },
        // No action and no revert runs on a VM whose host does not answer.
        { VmStates.Unknown, VmStates.Running, "action.start" },
        { VmStates.Unknown, VmStates.Stopped, "action.stop" },
        { VmStates.Unknown, VmStates.Running, "snapshot.revert" },
        // A migrating VM waits for its migration's settlement, and a VM whose host is away is not migrated.
        { VmStates.Migrating, VmStates.Unknown, "host.down" },
        { VmStates.Unknown, VmStates.Migrating, "migration" },
    };

    [Theory]
    [MemberData(nameof(Legal))]
    public void A_transition_in_the_table_is_allowed(string from, string to, string reason) =>
        Assert.True(VmTransitions.IsAllowed(from, to, Reason(reason)), $"{from} → {to} ({reason}) should be allowed");

    [Theory]
    [MemberData(nameof(Illegal))]
    public void A_transition_outside_the_table_is_refused(string from, string to, string reason) =>
        Assert.False(VmTransitions.IsAllowed(from, to, Reason(reason)), $"{from} → {to} ({reason}) should be refused");

    [Fact]
    public void Staying_in_a_state_is_no_transition_and_always_allowed()
    {
        foreach (var state in VmStates.All)
        {
            Assert.True(VmTransitions.IsAllowed(state, state, VmStateReason.Create));
        }
    }

    /// <summary>Every action the actions' table performs is a legal transition to the action's end state, and only those.</summary>
    [Fact]
    public void The_action_rows_are_exactly_the_actions_table()
    {
        foreach (var action in Enum.GetValues<VmAction>())
        {
            foreach (var from in VmStates.All)
            {
                foreach (var to in VmStates.All.Where(to => to != from))
                {
                    var performed = VmActions.Plan(action, from) == ActionPlan.Perform && to == VmActions.EndState(action);
                    Assert.Equal(performed, VmTransitions.IsAllowed(from, to, VmStateReason.For(action)));
                }
            }
        }
    }

    private static VmStateReason Reason(string word) => word switch
    {
        "create" => VmStateReason.Create,
        "libvirt.event" => VmStateReason.LibvirtEvent,
        "reconcile" => VmStateReason.Reconcile,
        "observed" => VmStateReason.Observed,
        "snapshot.revert" => VmStateReason.SnapshotRevert,
        "recovery" => VmStateReason.Recovery,
        "delete" => VmStateReason.Delete,
        "delete.failed" => VmStateReason.DeleteFailed,
        "migration" => VmStateReason.Migration,
        "migration.completed" => VmStateReason.Migrated,
        "migration.failed" => VmStateReason.MigrationFailed,
        "host.down" => VmStateReason.HostDown,
        _ when word.StartsWith("action.", StringComparison.Ordinal) && VmActions.TryParse(word["action.".Length..], out var action) => VmStateReason.For(action),
        _ => throw new ArgumentException($"unknown reason {word}", nameof(word)),
    };
}
