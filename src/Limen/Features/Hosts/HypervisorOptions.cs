namespace Limen.Features.Hosts;

/// <summary>
/// Settings under "Limen:Hypervisor": the local libvirt host (the first host of the registry), and
/// what holds for the VMs of every host (network, domain prefix, timeouts, read-only).
/// </summary>
public sealed class HypervisorOptions
{
    public const string Section = "Limen:Hypervisor";

    /// <summary>The local host's name in `hosts` and in host.up/down events.</summary>
    public string Name { get; set; } = "local";

    public string Uri { get; set; } = "qemu:///system";

    /// <summary>Where this host's VNC consoles listen (libvirt's vnc_listen; loopback for the local host).</summary>
    public string ConsoleAddress { get; set; } = "127.0.0.1";

    /// <summary>The address QEMU migration streams to the local host go to; empty = libvirt's default.</summary>
    public string? MigrationAddress { get; set; }

    /// <summary>auto, kvm or qemu (TCG). auto picks kvm only where kvm_intel or kvm_amd is loaded.</summary>
    public string VirtualizationType { get; set; } = "auto";

    /// <summary>The libvirt network VM NICs attach to, on every host; none when empty (VMs then have no NIC).</summary>
    public string? Network { get; set; }

    /// <summary>Domain names are prefix + VM id; tests use "limen-test-" so leftovers can be swept.</summary>
    public string DomainPrefix { get; set; } = "limen-";

    /// <summary>Where the local host's VM disks and serial logs live; default &lt;state&gt;/disks.</summary>
    public string? DiskDir { get; set; }

    public int ShutdownTimeoutSeconds { get; set; } = 60;

    public int ReconcileIntervalSeconds { get; set; } = 10;

    /// <summary>
    /// Open every host's libvirt read-only, so that libvirt itself refuses every change. The restore
    /// drill runs its second instance this way: it sees the real domains (VM states, consoles) and
    /// cannot alter them.
    /// </summary>
    public bool ReadOnly { get; set; }
}
