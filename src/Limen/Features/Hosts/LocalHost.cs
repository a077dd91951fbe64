using Limen.Data;
using Limen.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Limen.Features.Hosts;

/// <summary>The host this server's hypervisor connection points at: its row in `hosts` and its disk folder.</summary>
public sealed class LocalHost(IOptions<HypervisorOptions> options, IOptions<LimenOptions> limen)
{
    public const string Name = "local";

    private Guid? id;

    public Guid Id => id ?? throw new InvalidOperationException("LocalHost.EnsureAsync has not run.");

    public string DiskDir { get; } = StateDirectory.Sub(limen.Value.StateDir, options.Value.DiskDir, "disks");

    public string DiskPath(Guid vmId) => Path.Combine(DiskDir, $"{vmId}.qcow2");

    public string SerialLogPath(Guid vmId) => Path.Combine(DiskDir, $"{vmId}.serial.log");

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
