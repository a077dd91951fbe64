using Limen.Data;
using Limen.Features.Events;
using Limen.Libvirt;

namespace Limen.Features.Vms;

/// <summary>The data of vm.state_changed; <see cref="Reason"/> is a <see cref="VmStateReason"/> word.</summary>
public sealed record VmStateChange(Guid VmId, string From, string To, string Reason, DateTimeOffset At);

/// <summary>
/// The one writer of a VM's state. Every change — an action, what libvirt shows, a snapshot revert,
/// recovery, a delete — is checked against <see cref="VmTransitions"/>, written to the row and
/// staged as <c>vm.state_changed</c> in the caller's context, so the event commits with the row or
/// not at all. A move the table does not allow is a bug in the caller: it throws before anything
/// is written.
/// </summary>
public sealed class VmStateMachine(EventOutlet events, TimeProvider clock)
{
    /// <summary>Moves <paramref name="vm"/> to <paramref name="to"/>; false (and nothing written) when it is already there.</summary>
    public bool Transition(LimenDbContext db, Vm vm, string to, VmStateReason reason, string? stateReason = null)
    {
        var from = vm.State;
        if (from == to)
        {
            return false;
        }

        if (!VmTransitions.IsAllowed(from, to, reason))
        {
            throw new InvalidOperationException($"VM {vm.Id}: {from} → {to} is not a transition {reason.Word} may make.");
        }

        var at = clock.GetUtcNow();
        vm.State = to;
        vm.StateReason = stateReason;
        vm.UpdatedAt = at;
        events.Stage(db, new EventDraft(EventTypes.VmStateChanged, vm.OwnerId, vm.Id,
            new VmStateChange(vm.Id, from, to, reason.Word, at)));
        return true;
    }

    /// <summary>The row follows libvirt; a vanished domain makes the VM missing (never silently deleted).</summary>
    public bool Observe(LimenDbContext db, Vm vm, DomainState? observed, VmStateReason reason)
    {
        var state = VmStates.FromObserved(observed);
        return Transition(db, vm, state, reason, state switch
        {
            VmStates.Missing => "The libvirt domain no longer exists on its host.",
            VmStates.Error => $"libvirt reports the domain {observed!.Value.ToString().ToLowerInvariant()}.",
            _ => null,
        });
    }
}
