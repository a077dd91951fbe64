namespace Limen.Data;

/// <summary>A libvirt host the control plane drives. Today the local one; more join through libvirt's remote URIs.</summary>
public sealed class VmHost
{
    public Guid Id { get; set; }
    public required string Name { get; set; }
    public required string Uri { get; set; }
    /// <summary>The address on which this host's VNC consoles are reachable for the console proxy.</summary>
    public required string ConsoleAddress { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}
