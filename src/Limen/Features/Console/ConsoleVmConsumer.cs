using System.Text.Json;
using Limen.Data;
using Limen.Features.Events;
using Limen.Features.Vms;

namespace Limen.Features.RemoteConsole;

/// <summary>
/// Ends the sessions this server relays for a VM that stopped or is going away, whichever server
/// (or libvirt itself) moved it: a console must not outlive its VM's display, and it ends naming why.
/// A VM that moved to another host ends its sessions as vm_migrated: the client reconnects to it there.
/// </summary>
public sealed class ConsoleVmConsumer(ConsoleSessions sessions) : IEventConsumer
{
    public IReadOnlyCollection<string> Types { get; } = [EventTypes.VmStateChanged, EventTypes.VmDeleted];

    public Task ConsumeAsync(LimenEvent committed, CancellationToken cancellationToken)
    {
        if (committed.VmId is not { } vmId)
        {
            return Task.CompletedTask;
        }

        var change = committed.Type == EventTypes.VmDeleted ? null : JsonSerializer.Deserialize<VmStateChange>(committed.Data, EventOutlet.DataJson);
        if (change?.Reason == VmStateReason.Migrated.Word)
        {
            sessions.EndForVm(vmId, ConsoleEndReasons.VmMigrated);
            return Task.CompletedTask;
        }

        var to = committed.Type == EventTypes.VmDeleted ? VmStates.Deleting : change?.To;
        switch (to)
        {
            case VmStates.Stopped or VmStates.Error:
                sessions.EndForVm(vmId, ConsoleEndReasons.VmStopped);
                break;
            case VmStates.Deleting or VmStates.Missing:
                sessions.EndForVm(vmId, ConsoleEndReasons.VmDeleted);
                break;
        }

        return Task.CompletedTask;
    }
}
