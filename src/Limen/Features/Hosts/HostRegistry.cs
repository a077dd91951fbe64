using System.Collections.Frozen;
using Limen.Data;
using Limen.Hosting;
using Limen.Libvirt;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Limen.Features.Hosts;

/// <summary>CPUs, memory and disk of the hosts together: what the system quota's defaults derive from.</summary>
public sealed record HostCapacity(int Cpus, ulong MemoryKiB, long DiskBytes);

/// <summary>
/// The libvirt hosts this server places VMs on, keyed by their id in `hosts`: the local host
/// (Limen:Hypervisor) first, then those under Limen:Hosts. Each has its own connection, so one
/// host being down only makes its own VMs unavailable.
/// </summary>
public sealed class HostRegistry : IDisposable
{
    private FrozenDictionary<Guid, RegisteredHost> byId = FrozenDictionary<Guid, RegisteredHost>.Empty;

    public HostRegistry(IOptions<HypervisorOptions> local, IOptions<HostListOptions> more, IOptions<LimenOptions> limen, ILoggerFactory loggers)
    {
        var readOnly = local.Value.ReadOnly;
        var logger = loggers.CreateLogger<Hypervisor>();
        All = HostSetting.All(local.Value, more.Value).Select(s => new RegisteredHost(s,
            s.IsLocal ? StateDirectory.Sub(limen.Value.StateDir, s.DiskDir, "disks") : StateDirectory.Ensure(s.DiskDir!),
            new Hypervisor(s.Uri, Hypervisor.ResolveDomainType(s.VirtualizationType, s.Uri), readOnly, logger))).ToList();
    }

    public IReadOnlyList<RegisteredHost> All { get; }

    public RegisteredHost Local => All[0];

    /// <summary>The host a VM lives on; a host no longer configured here is unavailable, like one that is down.</summary>
    public RegisteredHost Get(Guid hostId) => byId.TryGetValue(hostId, out var host)
        ? host
        : throw new HypervisorUnavailableException($"The VM's host {hostId} is not configured on this server (Limen:Hypervisor, Limen:Hosts).");

    public RegisteredHost Of(Vm vm) => Get(vm.HostId);

    /// <summary>Creates (or re-points) each host's row, found by URI or else by name; run once at start.</summary>
    public async Task EnsureAsync(LimenDbContext db, CancellationToken cancellationToken)
    {
        foreach (var configured in All)
        {
            var row = await db.Hosts.FirstOrDefaultAsync(h => h.Uri == configured.Uri, cancellationToken)
                ?? await db.Hosts.FirstOrDefaultAsync(h => h.Name == configured.Name, cancellationToken);
            if (row is null)
            {
                row = new VmHost { Id = Guid.NewGuid(), Name = configured.Name, Uri = configured.Uri, ConsoleAddress = configured.ConsoleAddress, CreatedAt = DateTimeOffset.UtcNow };
                db.Hosts.Add(row);
            }
            else
            {
                row.Name = configured.Name;
                row.Uri = configured.Uri;
                row.ConsoleAddress = configured.ConsoleAddress;
            }

            // One host at a time: the next host's lookup must see this one's new URI and name.
            await db.SaveChangesAsync(cancellationToken);
            configured.Assign(row.Id);
        }

        byId = All.ToFrozenDictionary(h => h.Id);
    }

    /// <summary>
    /// Where a new VM goes (simple placement until real scheduling): of the hosts that answer now,
    /// the one with the most memory left — libvirt's node memory minus what Limen's VMs on it are
    /// allocated, in any state, as the quotas count them; the local host on a tie. Throws the local
    /// host's unavailability when no host answers.
    /// </summary>
    public async Task<(RegisteredHost Host, NodeInfo Node)> PlaceAsync(LimenDbContext db, CancellationToken cancellationToken)
    {
        var reads = All.Select(h => Task.Run(h.Capacity, cancellationToken)).ToList();
        var allocated = await db.Vms.GroupBy(v => v.HostId).Select(g => new { g.Key, MemoryMb = g.Sum(v => (long)v.MemoryMb) })
            .ToDictionaryAsync(g => g.Key, g => g.MemoryMb, cancellationToken);
        (RegisteredHost Host, NodeInfo Node, long FreeMb)? best = null;
        for (var i = 0; i < All.Count; i++)
        {
            NodeInfo node;
            try
            {
                node = await reads[i];
            }
            catch (HypervisorUnavailableException)
            {
                continue;
            }

            var free = (long)(node.MemoryKiB / 1024) - allocated.GetValueOrDefault(All[i].Id);
            if (best is null || free > best.Value.FreeMb)
            {
                best = (All[i], node, free);
            }
        }

        // Every host is down: the local host's own error says why.
        return best is { } chosen ? (chosen.Host, chosen.Node) : (Local, await reads[0]);
    }

    /// <summary>
    /// Every host's CPUs and memory (the last known figures for a host that is down, so a host
    /// outage does not shrink the quotas) and the size of the distinct file systems their disks are on.
    /// </summary>
    public async Task<HostCapacity> CapacityAsync(CancellationToken cancellationToken)
    {
        var nodes = await Task.WhenAll(All.Select(h => Task.Run(h.KnownCapacity, cancellationToken)));
        if (nodes.All(n => n is null))
        {
            // No host ever answered: the local host's error is the one to show.
            Local.Capacity();
        }

        var disks = All.Select(h => new DriveInfo(h.DiskDir)).DistinctBy(d => d.Name).Sum(d => d.TotalSize);
        return new HostCapacity(nodes.Sum(n => n?.Cpus ?? 0), nodes.Aggregate(0UL, (sum, n) => sum + (n?.MemoryKiB ?? 0)), disks);
    }

    public void Dispose()
    {
        foreach (var host in All)
        {
            host.Hypervisor.Dispose();
        }
    }
}
