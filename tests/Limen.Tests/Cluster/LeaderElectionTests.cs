using System.Diagnostics;
using Limen.Features.Cluster;
using Limen.Features.Health;
using Limen.Features.Metrics;
using Limen.Hosting;
using Limen.Tests.Infrastructure;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Xunit.Abstractions;

namespace Limen.Tests.Cluster;

/// <summary>
/// The election itself, in-process on real PostgreSQL: two electors on one database, one of them
/// behind a loopback TCP relay that the test can freeze — a half-open connection, where the
/// leader's socket stays up but nothing answers any more.
/// </summary>
public sealed class LeaderElectionTests(ITestOutputHelper output) : IAsyncLifetime
{
    private TestDatabase database = null!;

    public async Task InitializeAsync() => database = await TestDatabase.CreateAsync();

    public Task DisposeAsync() => database.DisposeAsync().AsTask();

    [Fact]
    public async Task A_leader_whose_connection_stops_answering_steps_down_within_the_check_timeout()
    {
        await using var relay = new TcpRelay(database.ConnectionString);
        await using var frozenSide = Elector("srv-a", relay.ConnectionString);
        using var stop = new CancellationTokenSource();
        await frozenSide.Election.StartAsync(stop.Token);
        await Eventually.WaitAsync(() => Task.FromResult(frozenSide.Election.IsLeader), TimeSpan.FromSeconds(10), "srv-a leading");
        var term = await frozenSide.Election.WaitForLeadershipAsync(CancellationToken.None);
        Assert.Equal(1, ProblemAssert.Sample(Exposition(frozenSide.Metrics), "limen_leader", "server_id=\"srv-a\""));

        await using var other = Elector("srv-b", database.ConnectionString);
        await other.Election.StartAsync(stop.Token);
        await Task.Delay(LeaderElection.RetryInterval * 2);
        Assert.False(other.Election.IsLeader);

        relay.Freeze();
        var frozen = Stopwatch.StartNew();
        await Eventually.WaitAsync(() => Task.FromResult(!frozenSide.Election.IsLeader), TimeSpan.FromSeconds(10), "srv-a stepping down");
        output.WriteLine($"stepped down {frozen.ElapsedMilliseconds} ms after its connection froze");
        Assert.True(frozen.Elapsed < LeaderElection.CheckInterval + LeaderElection.CheckTimeout + TimeSpan.FromSeconds(2), $"{frozen.ElapsedMilliseconds} ms");
        Assert.True(term.IsCancellationRequested);
        Assert.Equal(0, ProblemAssert.Sample(Exposition(frozenSide.Metrics), "limen_leader", "server_id=\"srv-a\""));

        // Here the relay keeps the backend's socket alive, so PostgreSQL still holds the lock for the
        // frozen session; ending that backend (as PostgreSQL's keepalive does on a real dead link) frees it.
        await database.ScalarAsync(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND classid = 19533 AND objid = 2 AND objsubid = 2");
        await Eventually.WaitAsync(() => Task.FromResult(other.Election.IsLeader), TimeSpan.FromSeconds(10), "srv-b taking over");
        Assert.False(frozenSide.Election.IsLeader);
        await stop.CancelAsync();
    }

    [Fact]
    public async Task A_leader_that_stops_hands_over_at_the_next_retry()
    {
        await using var first = Elector("srv-a", database.ConnectionString);
        await using var second = Elector("srv-b", database.ConnectionString);
        await first.Election.StartAsync(CancellationToken.None);
        await Eventually.WaitAsync(() => Task.FromResult(first.Election.IsLeader), TimeSpan.FromSeconds(10), "srv-a leading");
        await second.Election.StartAsync(CancellationToken.None);
        await Task.Delay(LeaderElection.RetryInterval * 2);
        Assert.False(second.Election.IsLeader);

        await first.Election.StopAsync(CancellationToken.None);
        var stopped = Stopwatch.StartNew();
        Assert.False(first.Election.IsLeader);
        await Eventually.WaitAsync(() => Task.FromResult(second.Election.IsLeader), TimeSpan.FromSeconds(10), "srv-b taking over");
        output.WriteLine($"srv-b led {stopped.ElapsedMilliseconds} ms after srv-a stopped");
        Assert.True(stopped.Elapsed < LeaderElection.RetryInterval + TimeSpan.FromSeconds(2), $"{stopped.ElapsedMilliseconds} ms");
        await second.Election.StopAsync(CancellationToken.None);
    }

    [Fact]
    public async Task A_leader_only_loop_stands_by_without_failing_while_leadership_is_lost_and_resumes_when_it_is_back()
    {
        await using var elector = Elector("srv-a", database.ConnectionString);
        var loops = new LoopHealth();
        using var loop = new LeaderOnlyLoop(loops, elector.Election);
        await loop.StartAsync(CancellationToken.None);
        Assert.Equal(LoopStatuses.Standby, await StatusAsync(loops, s => s == LoopStatuses.Standby));
        Assert.Equal(0, loop.Attempts);

        await elector.Election.StartAsync(CancellationToken.None);
        await StatusAsync(loops, s => s == LoopStatuses.Ok);
        var firstSuccess = loops.Snapshot()[loop.Name].LastSuccessAt;

        // The leader's backend killed (as by a PostgreSQL restart): the attempt under way is cancelled.
        await Eventually.WaitAsync(() => Task.FromResult(loop.Running), TimeSpan.FromSeconds(10), "an attempt under way");
        await database.ScalarAsync(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND classid = 19533 AND objid = 2 AND objsubid = 2");
        var report = await ReportAsync(loops, r => r.Status == LoopStatuses.Standby);
        Assert.Equal((0, null), (report.ConsecutiveFailures, report.Reason));
        Assert.True(loop.Cancelled >= 1);

        // Re-elected at the election's next try; the loop runs again.
        await ReportAsync(loops, r => r.Status == LoopStatuses.Ok && r.LastSuccessAt > firstSuccess);
        Assert.True(elector.Election.IsLeader);
        await loop.StopAsync(CancellationToken.None);
    }

    private static async Task<string> StatusAsync(LoopHealth loops, Func<string, bool> match) =>
        (await ReportAsync(loops, r => match(r.Status))).Status;

    private static async Task<LoopReport> ReportAsync(LoopHealth loops, Func<LoopReport, bool> match)
    {
        LoopReport? found = null;
        await Eventually.WaitAsync(() => Task.FromResult(loops.Snapshot().TryGetValue(LeaderOnlyLoop.LoopName, out var r) && match(found = r)),
            TimeSpan.FromSeconds(15), "the loop's report", () => string.Join(", ", loops.Snapshot()));
        return found!;
    }

    /// <summary>Attempts of half a second, back to back, on the leader only: leadership is lost mid-attempt.</summary>
    private sealed class LeaderOnlyLoop(LoopHealth health, LeaderElection leadership)
        : BackgroundLoop(health, TimeProvider.System, NullLogger.Instance, leadership)
    {
        public const string LoopName = "leader_only_test_loop";
        private int attempts;
        private int cancelled;
        private int running;

        public override string Name => LoopName;
        public int Attempts => Volatile.Read(ref attempts);
        public int Cancelled => Volatile.Read(ref cancelled);
        public bool Running => Volatile.Read(ref running) == 1;

        protected override TimeSpan Interval => TimeSpan.FromMilliseconds(1);

        protected override async Task RunOnceAsync(CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref attempts);
            Volatile.Write(ref running, 1);
            try
            {
                await Task.Delay(500, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                Interlocked.Increment(ref cancelled);
                throw;
            }
            finally
            {
                Volatile.Write(ref running, 0);
            }
        }
    }

    private static string Exposition(LimenMetrics metrics)
    {
        using var stream = new MemoryStream();
        metrics.Registry.CollectAndExportAsTextAsync(stream).GetAwaiter().GetResult();
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }

    private static TestElector Elector(string serverId, string connectionString)
    {
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["ConnectionStrings:Limen"] = connectionString }).Build();
        var cluster = new ClusterDatabase(configuration);
        var metrics = new LimenMetrics();
        var identity = new ServerIdentity(Options.Create(new LimenOptions { ServerId = serverId }), configuration);
        return new TestElector(cluster, metrics, new LeaderElection(cluster, identity, metrics, TimeProvider.System, NullLogger<LeaderElection>.Instance));
    }

    private sealed record TestElector(ClusterDatabase Cluster, LimenMetrics Metrics, LeaderElection Election) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await Election.StopAsync(CancellationToken.None);
            Election.Dispose();
            await Cluster.DisposeAsync();
        }
    }
}
