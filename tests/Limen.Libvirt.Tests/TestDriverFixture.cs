namespace Limen.Libvirt.Tests;

/// <summary>
/// Helpers for libvirt's built-in test driver. Every connection to test:///default in one process
/// shares the same in-memory state (and tests run in parallel), so each test works on domains with
/// its own unique name and leaves the built-in "test" domain alone.
/// </summary>
internal static class TestDriver
{
    public const string Uri = "test:///default";

    public static string UniqueName(string purpose) => $"limen-test-{purpose}-{Guid.NewGuid():N}"[..40];

    public static string DomainXml(string name, Guid uuid) => $"""
        <domain type='test'>
          <name>{name}</name>
          <uuid>{uuid}</uuid>
          <memory unit='KiB'>65536</memory>
          <currentMemory unit='KiB'>65536</currentMemory>
          <vcpu>2</vcpu>
          <os><type arch='x86_64'>hvm</type></os>
          <devices>
            <disk type='file' device='disk'>
              <source file='/guest/{name}.img'/>
              <target dev='vda' bus='virtio'/>
            </disk>
            <interface type='network'>
              <source network='default'/>
            </interface>
          </devices>
        </domain>
        """;

    /// <summary>Defines a fresh domain; dispose the result to undefine it (destroying it first if it runs).</summary>
    public static TemporaryDomain Define(LibvirtConnection connection, string purpose)
    {
        var uuid = Guid.NewGuid();
        return new TemporaryDomain(connection.DefineDomain(DomainXml(UniqueName(purpose), uuid)));
    }
}

internal sealed class TemporaryDomain(LibvirtDomain domain) : IDisposable
{
    public LibvirtDomain Domain { get; } = domain;

    public void Dispose()
    {
        if (Domain.IsActive)
        {
            Domain.Destroy();
        }
        Domain.Undefine(DomainUndefineFlags.SnapshotsMetadata);
        Domain.Dispose();
    }
}
