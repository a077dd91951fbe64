using Limen.Data;
using Limen.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Limen.Features.Hosts;

/// <summary>The host this server's hypervisor connection points at: its row in `hosts` and its disk folder.</summary>
public sealed class LocalHost(IOptions<HypervisorOptions> options, IOptions<LimenOptions> limen)
{
    public const string Name = "local";

    /// <summary>Below this a failed write is taken for a full disk (a qcow2 allocates in 64 KiB clusters).</summary>
    private const long NearlyFullBytes = 16L * 1024 * 1024;

    private Guid? id;

    public Guid Id => id ?? throw new InvalidOperationException("LocalHost.EnsureAsync has not run.");

    public string DiskDir { get; } = StateDirectory.Sub(limen.Value.StateDir, options.Value.DiskDir, "disks");

    public string DiskPath(Guid vmId) => Path.Combine(DiskDir, $"{vmId}.qcow2");

    public string SerialLogPath(Guid vmId) => Path.Combine(DiskDir, $"{vmId}.serial.log");

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

    /// <summary>Creates (or re-points) the local host's row; run once at start.</summary>
    public async Task EnsureAsync(LimenDbContext db, CancellationToken cancellationToken)
    {
        var uri = options.Value.Uri;
        var host = await db.Hosts.FirstOrDefaultAsync(h => h.Uri == uri, cancellationToken)
            ?? await db.Hosts.FirstOrDefaultAsync(h => h.Name == Name, cancellationToken);
        if (host is null)
        {
            host = new VmHost { Id = Guid.NewGuid(), Name = Name, Uri = uri, ConsoleAddress = options.Value.ConsoleAddress, CreatedAt = DateTimeOffset.UtcNow };
            db.Hosts.Add(host);
        }
        else
        {
            host.Uri = uri;
            host.ConsoleAddress = options.Value.ConsoleAddress;
        }

        await db.SaveChangesAsync(cancellationToken);
        id = host.Id;
    }
}
