namespace Limen.Tests.Infrastructure;

/// <summary>
/// Tests that boot real guests on qemu:///system or restart libvirtd: they run one after another,
/// never beside each other (a restarted libvirtd would break a neighbour's guest).
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class QemuSystemCollection
{
    public const string Name = "qemu-system";
}
