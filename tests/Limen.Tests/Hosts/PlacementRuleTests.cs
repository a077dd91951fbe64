using Limen.Features.Hosts;

namespace Limen.Tests.Hosts;

/// <summary>The placement rule, pure: spread, pack, the overcommit ratios, hosts down or in maintenance, anti-affinity, disk.</summary>
public sealed class PlacementRuleTests
{
    private const long GiB = 1024L * 1024 * 1024;

    /// <summary>A host of 4 CPUs and 4 GiB with 100 GiB of disk free, allocated the given memory (MiB) and vCPUs.</summary>
    private static HostCandidate Host(string name, long allocatedMib = 0, int allocatedVcpus = 0, bool up = true, HostMode mode = HostMode.Active,
        bool holdsGroup = false, long diskFree = 100 * GiB, long memoryMib = 4096) =>
        new(Guid.NewGuid(), name, up, mode, 4, memoryMib, diskFree, allocatedVcpus, allocatedMib, holdsGroup);

    private static PlacementOptions Options(PlacementStrategy strategy = PlacementStrategy.Spread, double cpu = 4.0, double memory = 1.0) =>
        new() { Strategy = strategy, CpuOvercommit = cpu, MemoryOvercommit = memory };

    public static TheoryData<string, HostCandidate[], VmDemand, PlacementOptions, string?> Cases => new()
    {
        // spread: the most memory left; pack: the least that still fits.
        { "spread takes the emptiest", [Host("a", 3000), Host("b", 1000), Host("c", 2000)], new(1, 512, 1), Options(), "b" },
        { "pack takes the fullest that fits", [Host("a", 3000), Host("b", 1000), Host("c", 2000)], new(1, 512, 1), Options(PlacementStrategy.Pack), "a" },
        { "pack skips the one it does not fit", [Host("a", 3800), Host("b", 1000), Host("c", 2000)], new(1, 512, 1), Options(PlacementStrategy.Pack), "c" },
        { "a tie goes to the earlier host", [Host("a", 1000), Host("b", 1000)], new(1, 512, 1), Options(), "a" },
        // Memory overcommit: 4 GiB × 1.5 = 6 GiB, so 3.5 GiB allocated still leaves room for 2 GiB.
        { "without memory overcommit a full host is skipped", [Host("a", 3584)], new(1, 2048, 1), Options(), null },
        { "memory overcommit makes room", [Host("a", 3584)], new(1, 2048, 1), Options(memory: 1.5), "a" },
        // CPU overcommit: 4 CPUs × 4 = 16 vCPUs; × 1 = 4.
        { "vCPUs within the overcommit fit", [Host("a", allocatedVcpus: 14)], new(2, 128, 1), Options(), "a" },
        { "vCPUs past the overcommit do not", [Host("a", allocatedVcpus: 15)], new(2, 128, 1), Options(), null },
        { "no overcommit: 4 vCPUs allocated is full", [Host("a", allocatedVcpus: 4), Host("b")], new(1, 128, 1), Options(cpu: 1.0), "b" },
        { "a VM larger than every host fits nowhere", [Host("a"), Host("b")], new(8, 128, 1), Options(), null },
        // Hosts down or in maintenance are never chosen, however empty.
        { "maintenance is skipped", [Host("a", 3000), Host("b", mode: HostMode.Maintenance)], new(1, 512, 1), Options(), "a" },
        { "down is skipped", [Host("a", 3000), Host("b", up: false)], new(1, 512, 1), Options(), "a" },
        // Anti-affinity: a host holding a VM of the owner's group is out.
        { "anti-affinity avoids the group's host", [Host("a", holdsGroup: true), Host("b", 3000)], new(1, 512, 1), Options(), "b" },
        { "anti-affinity with every host taken", [Host("a", holdsGroup: true), Host("b", holdsGroup: true)], new(1, 512, 1), Options(), null },
        // Disk: the folder's free bytes must hold the VM's disk.
        { "a disk folder too small is skipped", [Host("a", diskFree: 5 * GiB), Host("b", 3000, diskFree: 20 * GiB)], new(1, 512, 10), Options(), "b" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void The_rule_chooses_as_the_table_says(string why, HostCandidate[] hosts, VmDemand demand, PlacementOptions options, string? expected)
    {
        var decision = PlacementRule.Choose(hosts, demand, options);
        Assert.True(expected == hosts.FirstOrDefault(h => h.Id == decision.HostId)?.Name, $"{why}: chose {decision.HostId} ({decision.Reason})");
        Assert.Equal(expected is null, decision.Refusal is not null);
    }

    [Fact]
    public void The_reason_names_the_strategy_the_chosen_host_and_the_others()
    {
        // 3174 MiB and 1229 MiB free of 4096.
        var decision = PlacementRule.Choose([Host("host2", 922), Host("host3", 2867), Host("host4", mode: HostMode.Maintenance)],
            new VmDemand(1, 128, 1), Options());
        Assert.Equal("spread: host2 had 3.1 GiB free of 4 GiB, host3 1.2 GiB, host4 is in maintenance", decision.Reason);
    }

    [Fact]
    public void Refusals_say_which_kind_they_are()
    {
        Assert.Equal(PlacementRefusal.NoHostUp, PlacementRule.Choose([Host("a", up: false)], new(1, 128, 1), Options()).Refusal);
        Assert.Equal(PlacementRefusal.AntiAffinity, PlacementRule.Choose([Host("a", holdsGroup: true)], new(1, 128, 1), Options()).Refusal);
        var noRoom = PlacementRule.Choose([Host("a", 4000)], new(1, 512, 1), Options());
        Assert.Equal(PlacementRefusal.NoRoom, noRoom.Refusal);
        Assert.False(noRoom.DiskFull);
        Assert.Contains("a had 0.1 GiB free", noRoom.Reason, StringComparison.Ordinal);
        // Too little room for the disk is no room; a folder with next to nothing left is full (507).
        var small = PlacementRule.Choose([Host("a", diskFree: GiB / 2)], new(1, 128, 1), Options());
        Assert.Equal(PlacementRefusal.NoRoom, small.Refusal);
        Assert.False(small.DiskFull);
        Assert.True(PlacementRule.Choose([Host("a", diskFree: 1024 * 1024)], new(1, 128, 1), Options()).DiskFull);
        // A VM larger than every host that answers is bad input: the decision says the largest host.
        var large = PlacementRule.Choose([Host("a"), Host("b", up: false)], new(8, 128, 1), Options());
        Assert.Equal((4, 4096L), (large.MaxCpus, large.MaxMemoryMib));
    }

    [Theory]
    [InlineData(PlacementStrategy.Spread, 4.0, 1.0, 1.0, null)]
    [InlineData(PlacementStrategy.Pack, 0.05, 1.0, 1.0, "Limen:Placement:CpuOvercommit must be between 0.1 and 100 (got 0.05).")]
    [InlineData(PlacementStrategy.Spread, 4.0, double.NaN, 1.0, "Limen:Placement:MemoryOvercommit must be between 0.1 and 100 (got NaN).")]
    [InlineData((PlacementStrategy)7, 4.0, 1.0, 1.0, "Limen:Placement:Strategy must be spread or pack.")]
    public void The_options_are_checked_at_start(PlacementStrategy strategy, double cpu, double memory, double disk, string? expected)
    {
        var result = new PlacementOptionsValidation().Validate(null,
            new PlacementOptions { Strategy = strategy, CpuOvercommit = cpu, MemoryOvercommit = memory, DiskOvercommit = disk });
        Assert.Equal(expected, result.Failed ? result.FailureMessage : null);
    }
}
