namespace Limen.Libvirt.Tests;

public sealed class StatsTests : IDisposable
{
    private readonly LibvirtConnection connection = LibvirtConnection.Open(TestDriver.Uri);

    public void Dispose() => connection.Dispose();

    [Fact]
    public void Domain_stats_of_the_test_driver_hold_its_state_group_only()
    {
        // The test driver implements only the "state" group of the bulk stats API; cpu, balloon, block
        // and net values are checked against a real guest in QemuGuestTests.
        using var temp = TestDriver.Define(connection, "stats");
        temp.Domain.Create();
        temp.Domain.Suspend();

        var stats = temp.Domain.GetStats();

        Assert.Equal(temp.Domain.Uuid, stats.Uuid);
        Assert.Equal(temp.Domain.Name, stats.Name);
        Assert.Equal(DomainState.Paused, stats.State);
        Assert.Equal(3, stats.Values["state.state"]);
        Assert.Null(stats.CpuTimeNs);
        Assert.Null(stats.Memory.ActualKiB);
        Assert.Empty(stats.Blocks);
        Assert.Empty(stats.Interfaces);
    }

    [Fact]
    public void Bulk_stats_include_every_listed_domain()
    {
        using var stopped = TestDriver.Define(connection, "bulk");

        var all = connection.GetAllDomainStats();
        var running = connection.GetAllDomainStats(DomainStatsTypes.State, ListDomainsFlags.Active);

        Assert.Equal(DomainState.Running, Assert.Single(all, s => s.Name == "test").State);
        Assert.Equal(DomainState.Shutoff, Assert.Single(all, s => s.Uuid == stopped.Domain.Uuid).State);
        Assert.DoesNotContain(running, s => s.Uuid == stopped.Domain.Uuid);
        Assert.Equal(DomainState.Running, Assert.Single(running, s => s.Name == "test").State);
        // Only the requested group is returned.
        Assert.All(running, s => Assert.All(s.Values.Keys, k => Assert.StartsWith("state.", k)));
    }
}
