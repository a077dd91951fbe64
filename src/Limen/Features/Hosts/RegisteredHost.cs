using Limen.Data;
using Limen.Libvirt;

namespace Limen.Features.Hosts;

/// <summary>Whether placement may put new VMs on a host (and migration may move VMs to it).</summary>
public enum HostMode
{
    Active,
    /// <summary>Kept out of placement: its VMs stay and work, no new ones come (drain ends here).</summary>
    Maintenance,
}

public static class HostModeNames
{
    public static string Of(HostMode mode) => mode == HostMode.Maintenance ? HostModes.Maintenance : HostModes.Active;

    public static HostMode Parse(string mode) => mode == HostModes.Maintenance ? HostMode.Maintenance : HostMode.Active;
}

/// <summary>One libvirt host of the registry: its row in `hosts`, its connection, its disk folder and console address.</summary>
public sealed class RegisteredHost(HostSetting setting, string diskDir, Hypervisor hypervisor)
{
    /// <summary>Below this a failed write is taken for a full disk (a qcow2 allocates in 64 KiB clusters).</summary>
    private const long NearlyFullBytes = 16L * 1024 * 1024;

    private Guid? id;
    private volatile NodeInfo? lastCapacity;
    private volatile int mode = (int)HostMode.Active;

    public Guid Id => id ?? throw new InvalidOperationException("HostRegistry.EnsureAsync has not run.");

    public string Name => setting.Name;

    public string Uri => setting.Uri;

    /// <summary>The local host is the first one, configured under Limen:Hypervisor.</summary>
    public bool IsLocal => setting.IsLocal;

    /// <summary>Where the host's VNC servers are reached when libvirt says they listen on a wildcard address.</summary>
    public string ConsoleAddress => setting.ConsoleAddress;

    /// <summary>Where QEMU migration streams to this host go (VIR_MIGRATE_PARAM_URI's address); null = libvirt's default.</summary>
    public string? MigrationAddress => setting.MigrationAddress;

    /// <summary>config (Limen:Hypervisor, Limen:Hosts) or api (added through /api/admin/hosts).</summary>
    public string Source => setting.Source;

    /// <summary>As the host's row says; changed by <see cref="HostAdmin.SetModeAsync"/> (on every server, through host.mode_changed).</summary>
    public HostMode Mode
    {
        get => (HostMode)mode;
        internal set => mode = (int)value;
    }

    public Hypervisor Hypervisor => hypervisor;

    public string DiskDir => diskDir;

    public string DiskPath(Guid vmId) => Path.Combine(DiskDir, $"{vmId}.qcow2");

    public string SerialLogPath(Guid vmId) => Path.Combine(DiskDir, $"{vmId}.serial.log");

    internal void Assign(Guid hostId) => id = hostId;

    /// <summary>CPUs and memory by libvirt's node info, read now.</summary>
    public NodeInfo Capacity()
    {
        var node = Hypervisor.Run(c => c.GetNodeInfo());
        lastCapacity = node;
        return node;
    }

    /// <summary>The capacity read now, or the last one read while the host is down (null if it never answered).</summary>
    public NodeInfo? KnownCapacity()
    {
        try
        {
            return Capacity();
        }
        catch (HypervisorUnavailableException)
        {
            return lastCapacity;
        }
    }

    /// <summary>Deletes a VM's disk and serial log; files that are already gone are fine.</summary>
    public void DeleteVmFiles(Guid vmId)
    {
        File.Delete(DiskPath(vmId));
        File.Delete(SerialLogPath(vmId));
    }

    /// <summary>
    /// Whether a failed write into the disk folder (a new disk, a snapshot) failed for want of space:
    /// the error says ENOSPC (qemu-img does), or the folder's file system has next to nothing left —
    /// QEMU reports a memory snapshot that ran out of space only as an I/O error.
    /// </summary>
    public bool OutOfSpace(Exception failure)
    {
        if (failure.Message.Contains("No space left on device", StringComparison.Ordinal))
        {
            return true;
        }

        try
        {
            // statvfs's f_bavail: what QEMU, which does not run as root, can still allocate.
            return new DriveInfo(DiskDir).AvailableFreeSpace < NearlyFullBytes;
        }
        catch (IOException)
        {
            return false;
        }
    }
}
