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
/// (Limen:Hypervisor) first, then those under Limen:Hosts, then those added through the API (rows
/// of source api). Each has its own connection, so one host being down only makes its own VMs
/// unavailable. The set grows and shrinks at run time (<see cref="HostAdmin"/>, and on the other
/// servers <see cref="HostEventConsumer"/>); whoever iterates <see cref="All"/> per host reads it
/// anew each time, and <see cref="Added"/>/<see cref="Removed"/> tell those that keep a per-host loop.
/// </summary>
public sealed class HostRegistry : IDisposable
{
    private readonly Lock gate = new();
    private readonly bool readOnly;
    private readonly string stateDir;
    private readonly ILogger<Hypervisor> logger;
    private IReadOnlyList<RegisteredHost> all;
    private FrozenDictionary<Guid, RegisteredHost> byId = FrozenDictionary<Guid, RegisteredHost>.Empty;

    public HostRegistry(IOptions<HypervisorOptions> local, IOptions<HostListOptions> more, IOptions<LimenOptions> limen, ILoggerFactory loggers)
    {
        readOnly = local.Value.ReadOnly;
        stateDir = limen.Value.StateDir;
        logger = loggers.CreateLogger<Hypervisor>();
        all = HostSetting.All(local.Value, more.Value).Select(Open).ToList();
    }

    /// <summary>Raised after a host joined the running registry (its id assigned).</summary>
    public event Action<RegisteredHost>? Added;

    /// <summary>Raised after a host left the registry; its connection is released after the handlers ran.</summary>
    public event Action<RegisteredHost>? Removed;

    /// <summary>The hosts now, the local one first: a snapshot that later additions do not change.</summary>
    public IReadOnlyList<RegisteredHost> All => Volatile.Read(ref all);

    public RegisteredHost Local => All[0];

    /// <summary>The host a VM lives on; a host no longer configured here is unavailable, like one that is down.</summary>
    public RegisteredHost Get(Guid hostId) => Find(hostId)
        ?? throw new HypervisorUnavailableException($"The VM's host {hostId} is not configured on this server (Limen:Hypervisor, Limen:Hosts, /api/admin/hosts).");

    public RegisteredHost? Find(Guid hostId) => Volatile.Read(ref byId).GetValueOrDefault(hostId);

    public RegisteredHost Of(Vm vm) => Get(vm.HostId);

    /// <summary>
    /// Creates (or re-points) each configured host's row, found by URI or else by name, then opens
    /// the hosts added through the API; run once at start. Every host takes its mode from its row.
    /// </summary>
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

            // A configured host is the configuration's, even where the API had added one of that name or URI before.
            row.Name = configured.Name;
            row.Uri = configured.Uri;
            row.ConsoleAddress = configured.ConsoleAddress;
            row.MigrationAddress = configured.MigrationAddress;
            row.Source = HostSources.Config;
            row.DiskDir = null;
            row.VirtualizationType = null;

            // One host at a time: the next host's lookup must see this one's new URI and name.
            await db.SaveChangesAsync(cancellationToken);
            configured.Assign(row.Id);
            configured.Mode = HostModeNames.Parse(row.Mode);
        }

        var added = await db.Hosts.AsNoTracking().Where(h => h.Source == HostSources.Api).OrderBy(h => h.CreatedAt).ToListAsync(cancellationToken);
        lock (gate)
        {
            all = [.. all, .. added.Select(Opened)];
            byId = all.ToFrozenDictionary(h => h.Id);
        }
    }

    /// <summary>Opens a host added through the API (its row committed) and adds it; false when it is here already.</summary>
    public bool Add(VmHost row)
    {
        RegisteredHost host;
        lock (gate)
        {
            if (byId.ContainsKey(row.Id))
            {
                return false;
            }

            host = Opened(row);
            all = [.. all, host];
            byId = all.ToFrozenDictionary(h => h.Id);
        }

        Added?.Invoke(host);
        return true;
    }

    /// <summary>Takes a host out (its row deleted) and releases its connection; false when it was not here.</summary>
    public bool Remove(Guid hostId)
    {
        RegisteredHost? host;
        lock (gate)
        {
            host = byId.GetValueOrDefault(hostId);
            if (host is null || host.IsLocal)
            {
                return false;
            }

            all = all.Where(h => h.Id != hostId).ToList();
            byId = all.ToFrozenDictionary(h => h.Id);
        }

        Removed?.Invoke(host);
        host.Hypervisor.Dispose();
        return true;
    }

    private RegisteredHost Open(HostSetting s) => new(s,
        s.IsLocal ? StateDirectory.Sub(stateDir, s.DiskDir, "disks") : StateDirectory.Ensure(s.DiskDir!),
        new Hypervisor(s.Uri, Hypervisor.ResolveDomainType(s.VirtualizationType, s.Uri), readOnly, logger));

    private RegisteredHost Opened(VmHost row)
    {
        var host = Open(HostSetting.From(row));
        host.Assign(row.Id);
        host.Mode = HostModeNames.Parse(row.Mode);
        return host;
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
