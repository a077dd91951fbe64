using System.Globalization;
using Limen.Data;
using Limen.Libvirt;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Limen.Features.Hosts;

public enum PlacementStrategy
{
    /// <summary>The host with the most memory left after overcommit: load evens out.</summary>
    Spread,
    /// <summary>The host with the least memory left that still fits: hosts fill up one after the other.</summary>
    Pack,
}

/// <summary>"Limen:Placement": how a new VM's host is chosen.</summary>
public sealed class PlacementOptions
{
    public const string Section = "Limen:Placement";

    public PlacementStrategy Strategy { get; set; } = PlacementStrategy.Spread;

    /// <summary>vCPUs a host may carry per CPU.</summary>
    public double CpuOvercommit { get; set; } = 4.0;

    /// <summary>Memory a host may carry per MiB it has (1.0: no overcommit).</summary>
    public double MemoryOvercommit { get; set; } = 1.0;

    /// <summary>
    /// Disk a host's folder may carry per free byte: 1.0 asks for the VM's whole disk free; qcow2
    /// overlays are thin, so an operator who watches the folder's use may allow more.
    /// </summary>
    public double DiskOvercommit { get; set; } = 1.0;
}

public sealed class PlacementOptionsValidation : IValidateOptions<PlacementOptions>
{
    public ValidateOptionsResult Validate(string? name, PlacementOptions options) =>
        !Enum.IsDefined(options.Strategy) ? ValidateOptionsResult.Fail($"{PlacementOptions.Section}:Strategy must be spread or pack.")
        : Ratio(options.CpuOvercommit, "CpuOvercommit") ?? Ratio(options.MemoryOvercommit, "MemoryOvercommit") ?? Ratio(options.DiskOvercommit, "DiskOvercommit")
        ?? ValidateOptionsResult.Success;

    private static ValidateOptionsResult? Ratio(double value, string setting) =>
        double.IsFinite(value) && value is >= 0.1 and <= 100
            ? null
            : ValidateOptionsResult.Fail($"{PlacementOptions.Section}:{setting} must be between 0.1 and 100 (got {value.ToString(CultureInfo.InvariantCulture)}).");
}

/// <summary>What a VM asks of a host.</summary>
public sealed record VmDemand(int Vcpus, int MemoryMb, int DiskGb);

/// <summary>
/// One host as placement sees it: whether it answers and takes VMs, what it has (libvirt's node
/// info, its disk folder's free bytes), what Limen's VMs on it are allocated (in any state, as the
/// quotas count them), and whether one of the owner's VMs of the same anti-affinity group is on it.
/// </summary>
public sealed record HostCandidate(
    Guid Id, string Name, bool Up, HostMode Mode, int Cpus, long MemoryMib, long DiskFreeBytes,
    int AllocatedVcpus, long AllocatedMemoryMib, bool HoldsGroup);

public enum PlacementRefusal
{
    /// <summary>No host answers: the create cannot happen now (503).</summary>
    NoHostUp,
    /// <summary>Hosts answer but none has room (507).</summary>
    NoRoom,
    /// <summary>Hosts with room exist, but each holds a VM of the owner's anti-affinity group (409).</summary>
    AntiAffinity,
}

/// <summary>The host chosen (null when refused) and why, in words for the audit log and admins.</summary>
/// <param name="DiskFull">Refused only for disk, and every such host's folder is (nearly) full.</param>
/// <param name="MaxCpus">The most CPUs of a host that answers: a VM larger than every host is bad input, not a lack of room.</param>
public sealed record PlacementDecision(Guid? HostId, string Reason, PlacementRefusal? Refusal = null, bool DiskFull = false, int MaxCpus = 0, long MaxMemoryMib = 0);

/// <summary>Whether a host can take a VM (a migration's target), and if not why.</summary>
public sealed record PlacementCheck(bool Fits, string Reason);

/// <summary>The placement rule, pure: which of the candidates a VM goes to, and the reason.</summary>
public static class PlacementRule
{
    private const double MiBPerGiB = 1024;

    /// <summary>Below this a disk folder is full (as <see cref="RegisteredHost.OutOfSpace"/> judges a failed write).</summary>
    private const long NearlyFullBytes = 16L * 1024 * 1024;

    /// <summary>Memory left on a host after overcommit, in MiB (negative when overcommitted past the ratio).</summary>
    public static double FreeMemoryMib(HostCandidate host, double memoryOvercommit) => host.MemoryMib * memoryOvercommit - host.AllocatedMemoryMib;

    /// <summary>Why the host cannot take the VM, or null when it can (anti-affinity is the caller's to judge).</summary>
    public static string? Misfit(HostCandidate host, VmDemand demand, PlacementOptions ratios)
    {
        if (!host.Up)
        {
            return $"{host.Name} is down";
        }

        if (host.Mode == HostMode.Maintenance)
        {
            return $"{host.Name} is in maintenance";
        }

        var vcpuRoom = host.Cpus * ratios.CpuOvercommit - host.AllocatedVcpus;
        var memoryFree = FreeMemoryMib(host, ratios.MemoryOvercommit);
        var diskNeed = demand.DiskGb * 1024.0 * 1024 * 1024;
        return demand.Vcpus > host.Cpus ? $"{host.Name} has only {host.Cpus} CPUs"
            : demand.MemoryMb > host.MemoryMib ? $"{host.Name} has only {Gib(host.MemoryMib)} GiB of memory"
            : demand.Vcpus > vcpuRoom ? $"{host.Name} has room for {Math.Max(0, (int)vcpuRoom)} more vCPUs"
            : demand.MemoryMb > memoryFree ? $"{host.Name} had {Gib(Math.Max(0, memoryFree))} GiB free"
            : diskNeed > host.DiskFreeBytes * ratios.DiskOvercommit ? $"{host.Name}'s disk folder has {Gib(host.DiskFreeBytes / (1024.0 * 1024))} GiB free"
            : null;
    }

    public static PlacementDecision Choose(IReadOnlyList<HostCandidate> hosts, VmDemand demand, PlacementOptions options)
    {
        var word = options.Strategy == PlacementStrategy.Pack ? "pack" : "spread";
        var misfits = hosts.ToDictionary(h => h.Id, h => Misfit(h, demand, options));
        var fitting = hosts.Where(h => misfits[h.Id] is null).ToList();
        var allowed = fitting.Where(h => !h.HoldsGroup).ToList();
        HostCandidate? chosen = null;
        foreach (var host in allowed)
        {
            // Ties go to the earlier host (the local one first): strict comparisons only.
            var free = FreeMemoryMib(host, options.MemoryOvercommit);
            if (chosen is null || (options.Strategy == PlacementStrategy.Pack ? free < FreeMemoryMib(chosen, options.MemoryOvercommit) : free > FreeMemoryMib(chosen, options.MemoryOvercommit)))
            {
                chosen = host;
            }
        }

        var others = hosts.Where(h => h != chosen).Select(h => misfits[h.Id] is { } why ? why
            : h.HoldsGroup ? $"{h.Name} holds a VM of the anti-affinity group"
            : $"{h.Name} {Gib(FreeMemoryMib(h, options.MemoryOvercommit))} GiB").ToList();
        if (chosen is not null)
        {
            var free = FreeMemoryMib(chosen, options.MemoryOvercommit);
            var head = $"{word}: {chosen.Name} had {Gib(free)} GiB free of {Gib(chosen.MemoryMib * options.MemoryOvercommit)} GiB";
            return new PlacementDecision(chosen.Id, others.Count == 0 ? head : $"{head}, {string.Join(", ", others)}");
        }

        var all = string.Join(", ", others);
        if (hosts.All(h => !h.Up))
        {
            return new PlacementDecision(null, $"no host answers: {all}", PlacementRefusal.NoHostUp);
        }

        if (fitting.Count > 0)
        {
            return new PlacementDecision(null, $"every host with room holds a VM of the anti-affinity group: {all}", PlacementRefusal.AntiAffinity);
        }

        // The disk folder is full when every host that would take the VM but for its disk has next to nothing left.
        var butForDisk = hosts.Where(h => Misfit(h, demand with { DiskGb = 0 }, options) is null).ToList();
        var up = hosts.Where(h => h.Up).ToList();
        return new PlacementDecision(null, $"no host has room for {demand.Vcpus} vCPUs, {demand.MemoryMb} MiB and {demand.DiskGb} GiB: {all}",
            PlacementRefusal.NoRoom, butForDisk.Count > 0 && butForDisk.All(h => h.DiskFreeBytes < NearlyFullBytes),
            up.Max(h => h.Cpus), up.Max(h => h.MemoryMib));
    }

    private static string Gib(double mib) => (mib / MiBPerGiB).ToString("0.#", CultureInfo.InvariantCulture);
}

/// <summary>
/// Places new VMs (and checks a migration's target) on the registry's hosts by <see cref="PlacementRule"/>,
/// with each host's figures read now: libvirt's node info and the disk folder's free bytes,
/// Limen's allocations from the database.
/// </summary>
public sealed class HostPlacement(HostRegistry hosts, IOptions<PlacementOptions> options)
{
    public PlacementOptions Options => options.Value;

    /// <summary>The decision, and the chosen host with its node info (null when refused).</summary>
    public async Task<(PlacementDecision Decision, RegisteredHost? Host, NodeInfo? Node)> PlaceAsync(
        LimenDbContext db, Guid ownerId, string? antiAffinityGroup, VmDemand demand, CancellationToken cancellationToken)
    {
        var registered = hosts.All;
        var (candidates, nodes) = await CandidatesAsync(db, registered, ownerId, antiAffinityGroup, null, cancellationToken);
        var decision = PlacementRule.Choose(candidates, demand, options.Value);
        var host = decision.HostId is { } id ? registered.First(h => h.Id == id) : null;
        return (decision, host, host is null ? null : nodes[host.Id]);
    }

    /// <summary>
    /// Whether <paramref name="target"/> can take <paramref name="vm"/> now (a migration's check):
    /// active, answering, room for its vCPUs, memory and disk with the overcommit ratios (the VM's
    /// own allocation not counted when it is already there), and no VM of the owner's anti-affinity group on it.
    /// </summary>
    public async Task<PlacementCheck> CheckTargetAsync(LimenDbContext db, Vm vm, RegisteredHost target, CancellationToken cancellationToken)
    {
        var (candidates, _) = await CandidatesAsync(db, [target], vm.OwnerId, vm.AntiAffinityGroup, vm.Id, cancellationToken);
        var candidate = candidates[0];
        return PlacementRule.Misfit(candidate, new VmDemand(vm.Vcpus, vm.MemoryMb, vm.DiskGb), options.Value) is { } why ? new PlacementCheck(false, why)
            : candidate.HoldsGroup ? new PlacementCheck(false, $"{target.Name} holds another VM of the anti-affinity group '{vm.AntiAffinityGroup}'")
            : new PlacementCheck(true, string.Create(CultureInfo.InvariantCulture,
                $"{target.Name} had {PlacementRule.FreeMemoryMib(candidate, options.Value.MemoryOvercommit) / 1024:0.#} GiB free"));
    }

    /// <summary>
    /// Where an existing VM would go if it left its host (a migration without a named target, a
    /// drain): the placement rule over every other host, the VM's own allocation not counted.
    /// </summary>
    public async Task<(PlacementDecision Decision, RegisteredHost? Host)> PlaceElsewhereAsync(LimenDbContext db, Vm vm, CancellationToken cancellationToken)
    {
        var others = hosts.All.Where(h => h.Id != vm.HostId).ToList();
        var (candidates, _) = await CandidatesAsync(db, others, vm.OwnerId, vm.AntiAffinityGroup, vm.Id, cancellationToken);
        var decision = PlacementRule.Choose(candidates, new VmDemand(vm.Vcpus, vm.MemoryMb, vm.DiskGb), options.Value);
        return (decision, decision.HostId is { } id ? others.First(h => h.Id == id) : null);
    }

    private static async Task<(List<HostCandidate> Candidates, Dictionary<Guid, NodeInfo?> Nodes)> CandidatesAsync(
        LimenDbContext db, IReadOnlyList<RegisteredHost> registered, Guid ownerId, string? group, Guid? except, CancellationToken cancellationToken)
    {
        // In parallel: a host that is slow to refuse must not delay the others.
        var reads = registered.Select(h => Task.Run(() => Read(h), cancellationToken)).ToList();
        var ids = registered.Select(h => h.Id).ToList();
        var vms = db.Vms.AsNoTracking().Where(v => ids.Contains(v.HostId) && v.Id != except);
        var allocated = await vms.GroupBy(v => v.HostId)
            .Select(g => new { g.Key, Vcpus = g.Sum(v => v.Vcpus), MemoryMb = g.Sum(v => (long)v.MemoryMb) })
            .ToDictionaryAsync(g => g.Key, cancellationToken);
        var grouped = group is null ? [] : (await vms.Where(v => v.OwnerId == ownerId && v.AntiAffinityGroup == group)
            .Select(v => v.HostId).Distinct().ToListAsync(cancellationToken)).ToHashSet();
        var candidates = new List<HostCandidate>();
        var nodes = new Dictionary<Guid, NodeInfo?>();
        for (var i = 0; i < registered.Count; i++)
        {
            var host = registered[i];
            var (node, diskFree) = await reads[i];
            nodes[host.Id] = node;
            var used = allocated.GetValueOrDefault(host.Id);
            candidates.Add(new HostCandidate(host.Id, host.Name, node is not null, host.Mode, node?.Cpus ?? 0, (long)((node?.MemoryKiB ?? 0) / 1024), diskFree,
                used?.Vcpus ?? 0, used?.MemoryMb ?? 0, grouped.Contains(host.Id)));
        }

        return (candidates, nodes);
    }

    /// <summary>The host's node info now (null when it does not answer) and its disk folder's free bytes (statvfs f_bavail).</summary>
    private static (NodeInfo? Node, long DiskFree) Read(RegisteredHost host)
    {
        NodeInfo? node;
        try
        {
            node = host.Capacity();
        }
        catch (HypervisorUnavailableException)
        {
            node = null;
        }

        long free;
        try
        {
            free = new DriveInfo(host.DiskDir).AvailableFreeSpace;
        }
        catch (IOException)
        {
            free = 0;
        }

        return (node, free);
    }
}
