namespace Limen.Features.Snapshots;

/// <summary>
/// A snapshot row is written (or marked) before libvirt is touched, so an operation cut short by a
/// crash, a lost libvirtd or a lost database is found and finished or undone by
/// <see cref="SnapshotRecovery"/>. Only a ready snapshot can be reverted or deleted.
/// </summary>
public static class SnapshotStates
{
    public const string Ready = "ready";
    public const string Creating = "creating";
    public const string Reverting = "reverting";
    public const string Deleting = "deleting";
}
