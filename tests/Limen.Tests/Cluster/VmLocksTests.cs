using System.Diagnostics;
using Limen.Features.Cluster;
using Limen.Features.Vms;
using Limen.Tests.Infrastructure;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit.Abstractions;

namespace Limen.Tests.Cluster;

/// <summary>
/// Per-VM locks across servers, on real PostgreSQL: two <see cref="VmLocks"/> with connections of
/// their own stand for two servers on one database, and pg_locks shows what PostgreSQL holds.
/// </summary>
public sealed class VmLocksTests(ITestOutputHelper output) : IAsyncLifetime
{
    private TestDatabase database = null!;
    private ClusterDatabase serverA = null!;
    private ClusterDatabase serverB = null!;

    public async Task InitializeAsync()
    {
        database = await TestDatabase.CreateAsync();
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["ConnectionStrings:Limen"] = database.ConnectionString }).Build();
        serverA = new ClusterDatabase(configuration);
        serverB = new ClusterDatabase(configuration);
    }

    public async Task DisposeAsync()
    {
        await serverA.DisposeAsync();
        await serverB.DisposeAsync();
        await database.DisposeAsync();
    }

    private static VmLocks Locks(ClusterDatabase server) => new(server, NullLogger<VmLocks>.Instance);

    [Fact]
    public async Task A_lock_held_on_one_server_makes_another_wait_until_it_is_released()
    {
        var (a, b) = (Locks(serverA), Locks(serverB));
        var vm = Guid.NewGuid();
        var held = await a.AcquireAsync(vm, CancellationToken.None);
        Assert.True(held.IsHeld);
        Assert.Equal((1, 0), await LocksOnAsync(vm));
        Assert.Null(await b.TryAcquireAsync(vm, CancellationToken.None));
        // Another VM is not held up.
        await using (var other = await b.TryAcquireAsync(Guid.NewGuid(), CancellationToken.None))
        {
            Assert.NotNull(other);
        }

        var waiting = b.AcquireAsync(vm, CancellationToken.None);
        await Eventually.WaitAsync(async () => await LocksOnAsync(vm) == (1, 1), TimeSpan.FromSeconds(10), "B waiting in PostgreSQL's lock queue");
        Assert.False(waiting.IsCompleted);

        var released = Stopwatch.StartNew();
        await held.DisposeAsync();
        await using var second = await waiting.WaitAsync(TimeSpan.FromSeconds(10));
        output.WriteLine($"B got the lock {released.ElapsedMilliseconds} ms after A's release began");
        Assert.True(second.IsHeld);
        Assert.Equal((1, 0), await LocksOnAsync(vm));
        Assert.Null(await a.TryAcquireAsync(vm, CancellationToken.None));
    }

    [Fact]
    public async Task A_cancelled_wait_gives_up_and_leaves_no_lock_behind()
    {
        var (a, b) = (Locks(serverA), Locks(serverB));
        var vm = Guid.NewGuid();
        var held = await a.AcquireAsync(vm, CancellationToken.None);
        using (var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(500)))
        {
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => b.AcquireAsync(vm, cancel.Token));
        }

        Assert.Equal((1, 0), await LocksOnAsync(vm));
        await held.DisposeAsync();
        Assert.Equal((0, 0), await LocksOnAsync(vm));
        // Neither B's in-process gate nor its database session kept anything.
        await using var again = await b.TryAcquireAsync(vm, CancellationToken.None);
        Assert.NotNull(again);
    }

    [Fact]
    public async Task A_lock_whose_connection_breaks_is_known_lost_and_free_for_the_others()
    {
        var (a, b) = (Locks(serverA), Locks(serverB));
        var vm = Guid.NewGuid();
        var held = await a.AcquireAsync(vm, CancellationToken.None);
        var (high, low) = KeyParts(vm);
        Assert.Equal(1, await database.ScalarAsync(
            $"SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1 AND classid::bigint = {high} AND objid::bigint = {low}"));

        var lost = Stopwatch.StartNew();
        await Eventually.WaitAsync(() => Task.FromResult(!held.IsHeld && held.Lost.IsCancellationRequested), TimeSpan.FromSeconds(15),
            "the holder noticing its lock is gone");
        output.WriteLine($"lost noticed after {lost.ElapsedMilliseconds} ms (keepalive every {ClusterDatabase.KeepaliveSeconds} s)");
        await using (var taken = await b.TryAcquireAsync(vm, CancellationToken.None))
        {
            Assert.NotNull(taken);
        }

        await held.DisposeAsync();
        await using var afterwards = await a.TryAcquireAsync(vm, CancellationToken.None);
        Assert.NotNull(afterwards);
    }

    [Fact]
    public async Task Locking_and_unlocking_costs_about_two_round_trips()
    {
        var locks = Locks(serverA);
        var vm = Guid.NewGuid();
        await (await locks.AcquireAsync(vm, CancellationToken.None)).DisposeAsync();
        const int rounds = 200;
        var watch = Stopwatch.StartNew();
        for (var i = 0; i < rounds; i++)
        {
            await (await locks.AcquireAsync(vm, CancellationToken.None)).DisposeAsync();
        }

        var perLock = watch.Elapsed.TotalMilliseconds / rounds;
        output.WriteLine($"acquire + release: {perLock:0.00} ms each over {rounds}");
        Assert.Equal((0, 0), await LocksOnAsync(vm));
        Assert.True(perLock < 50, $"{perLock:0.00} ms per lock");
    }

    private static (long High, long Low) KeyParts(Guid vm)
    {
        var key = VmLocks.Key(vm);
        return ((uint)(key >> 32), (uint)key);
    }

    /// <summary>Granted and waiting advisory locks on the VM's key in this database.</summary>
    private async Task<(long Granted, long Waiting)> LocksOnAsync(Guid vm)
    {
        var (high, low) = KeyParts(vm);
        var where = $"locktype = 'advisory' AND objsubid = 1 AND classid::bigint = {high} AND objid::bigint = {low} " +
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";
        return (await database.ScalarAsync($"SELECT count(*) FROM pg_locks WHERE {where} AND granted"),
            await database.ScalarAsync($"SELECT count(*) FROM pg_locks WHERE {where} AND NOT granted"));
    }
}
