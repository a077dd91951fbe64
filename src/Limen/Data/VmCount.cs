namespace Limen.Data;

/// <summary>
/// How many VMs one owner has (vm_counts). Triggers on vms keep it exact in the same transaction as
/// every insert, delete and change of owner (migration VmCounts), so a VM list's total is read from
/// a row per owner instead of counting every VM on every request. Limen never writes it.
/// </summary>
public sealed class VmCount
{
    public Guid OwnerId { get; set; }
    public int Vms { get; set; }
}
