namespace Limen.Features.Vms;

/// <summary>
/// Tells other features that a VM stopped running or is being deleted, so that what they hold on
/// it (open console sessions) does not outlive it. Raised by <see cref="VmService"/> for its own
/// acts and by <see cref="VmReconciler"/> for what happened behind Limen's back.
/// </summary>
public sealed class VmLifecycle
{
    public event Action<Guid>? Stopped;

    public event Action<Guid>? Deleted;

    public void NotifyStopped(Guid vmId) => Stopped?.Invoke(vmId);

    public void NotifyDeleted(Guid vmId) => Deleted?.Invoke(vmId);
}
