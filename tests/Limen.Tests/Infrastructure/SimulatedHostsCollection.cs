namespace Limen.Tests.Infrastructure;

/// <summary>
/// Tests on simulated hosts 2 and 3 (<see cref="SimulatedHostsFixture"/>, up once for all of them).
/// They run one after another and beside no other collection: they share the two hosts, boot real
/// guests and may touch qemu:///system, which a neighbour restarting libvirtd would break. Each test
/// removes the domains it creates; the fixture's end removes whatever is left.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SimulatedHostsCollection : ICollectionFixture<SimulatedHostsFixture>
{
    public const string Name = "simulated-hosts";
}

public sealed class SimulatedHostsFixture : IAsyncLifetime
{
    private SimulatedHost? host2;
    private SimulatedHost? host3;

    /// <summary>qemu+tcp://127.0.0.2/system.</summary>
    public SimulatedHost Host2 => host2 ?? throw new InvalidOperationException("the fixture is not initialized");

    /// <summary>qemu+tcp://127.0.0.3/system.</summary>
    public SimulatedHost Host3 => host3 ?? throw new InvalidOperationException("the fixture is not initialized");

    public async Task InitializeAsync()
    {
        host2 = await SimulatedHost.StartAsync(2);
        try
        {
            host3 = await SimulatedHost.StartAsync(3);
        }
        catch
        {
            // Host 2 must not outlive a failed start, whether or not xunit disposes a fixture whose
            // initialization failed (SimulatedHost.DisposeAsync acts once).
            await host2.DisposeAsync();
            throw;
        }
    }

    public async Task DisposeAsync()
    {
        try
        {
            if (host3 is not null)
            {
                await host3.DisposeAsync();
            }
        }
        finally
        {
            if (host2 is not null)
            {
                await host2.DisposeAsync();
            }
        }
    }
}
