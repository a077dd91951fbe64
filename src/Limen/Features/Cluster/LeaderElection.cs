using Limen.Features.Metrics;
using Limen.Hosting;
using Npgsql;

namespace Limen.Features.Cluster;

/// <summary>
/// Chooses the one server (of all `limen serve` on this database) that runs the loops which must
/// run once — the reconciler, event retention — by holding the session advisory lock
/// (<see cref="LockClass"/>, <see cref="LockObject"/>) on a dedicated connection. Followers try
/// again every <see cref="RetryInterval"/>. A leader that dies (SIGKILL, OOM) loses its socket and
/// PostgreSQL releases the lock at once; a leader whose connection goes half-open notices on its
/// next check (every <see cref="CheckInterval"/>, answered within <see cref="CheckTimeout"/> or
/// treated as lost) and stops leading at once — before PostgreSQL, which probes the silent socket
/// (<see cref="ClusterDatabase.ServerReleaseSeconds"/>), lets a follower take the lock. Takeover
/// therefore takes at most about 8 s + 2 s, under the 15 s promised in docs/operations.md.
/// </summary>
public sealed partial class LeaderElection : BackgroundService
{
    /// <summary>Limen's class in the two-int advisory key space (objid 1 orders events).</summary>
    public const int LockClass = 19533;
    public const int LockObject = 2;

    public static readonly TimeSpan RetryInterval = TimeSpan.FromSeconds(2);
    public static readonly TimeSpan CheckInterval = TimeSpan.FromSeconds(2);
    public static readonly TimeSpan CheckTimeout = TimeSpan.FromSeconds(2);

    private readonly ClusterDatabase database;
    private readonly LimenMetrics metrics;
    private readonly TimeProvider clock;
    private readonly ILogger<LeaderElection> logger;
    private readonly string serverId;
    private readonly Lock gate = new();
    // Non-null while this server leads; cancelled when that term ends.
    private CancellationTokenSource? term;
    private TaskCompletionSource<CancellationToken> elected = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public LeaderElection(ClusterDatabase database, ServerIdentity server, LimenMetrics metrics, TimeProvider clock, ILogger<LeaderElection> logger)
    {
        this.database = database;
        this.metrics = metrics;
        this.clock = clock;
        this.logger = logger;
        serverId = server.Id;
        metrics.ServerInfo.WithLabels(serverId).Set(1);
        metrics.Leader.WithLabels(serverId).Set(0);
    }

    public bool IsLeader
    {
        get
        {
            lock (gate)
            {
                return term is not null;
            }
        }
    }

    /// <summary>Returns once this server leads, with a token that is cancelled when it stops leading.</summary>
    public Task<CancellationToken> WaitForLeadershipAsync(CancellationToken cancellationToken)
    {
        lock (gate)
        {
            return elected.Task.WaitAsync(cancellationToken);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        NpgsqlConnection? connection = null;
        var failures = 0;
        try
        {
            while (true)
            {
                try
                {
                    connection ??= await database.OpenDedicatedAsync(stoppingToken);
                    if (await TryLockAsync(connection, stoppingToken))
                    {
                        BeginTerm();
                        var usable = await HoldAsync(connection, stoppingToken);
                        if (!usable)
                        {
                            connection = null; // handed to the hung check, which closes it when it returns
                        }
                    }

                    failures = 0;
                }
                catch (Exception e) when (!stoppingToken.IsCancellationRequested)
                {
                    EndTerm(e.GetBaseException().Message);
                    if (failures++ == 0)
                    {
                        LogElectionFailed(e.GetBaseException().Message);
                    }

                    if (connection is not null)
                    {
                        await connection.DisposeAsync();
                        connection = null;
                    }
                }

                await Task.Delay(RetryInterval, clock, stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping: closing the connection below releases the lock, and a follower leads within RetryInterval.
        }
        finally
        {
            EndTerm(null);
            if (connection is not null)
            {
                await connection.DisposeAsync();
            }
        }
    }

    private static async Task<bool> TryLockAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand($"SELECT pg_try_advisory_lock({LockClass}, {LockObject})", connection) { CommandTimeout = 5 };
        return (bool)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    /// <summary>
    /// Leads until a check fails or the server stops. False when the connection was given up to a
    /// check that did not answer in time (it is closed once that check returns).
    /// </summary>
    private async Task<bool> HoldAsync(NpgsqlConnection connection, CancellationToken stoppingToken)
    {
        while (true)
        {
            await Task.Delay(CheckInterval, clock, stoppingToken);
            var check = StillHoldsAsync(connection);
            var answered = await Task.WhenAny(check, Task.Delay(CheckTimeout, clock, stoppingToken));
            if (answered != check)
            {
                EndTerm($"the lock connection did not answer within {CheckTimeout.TotalSeconds:0} s");
                _ = check.ContinueWith(_ => connection.Dispose(), TaskScheduler.Default);
                return false;
            }

            if (!await check)
            {
                EndTerm("the lock is no longer held by this connection");
                return true;
            }
        }
    }

    private static async Task<bool> StillHoldsAsync(NpgsqlConnection connection)
    {
        await using var command = new NpgsqlCommand(
            $"SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory' AND classid = {LockClass} AND objid = {LockObject} AND objsubid = 2 AND granted)",
            connection) { CommandTimeout = 10 };
        return (bool)(await command.ExecuteScalarAsync(CancellationToken.None))!;
    }

    private void BeginTerm()
    {
        lock (gate)
        {
            term = new CancellationTokenSource();
            elected.TrySetResult(term.Token);
        }

        metrics.Leader.WithLabels(serverId).Set(1);
        LogElected(serverId);
    }

    /// <param name="reason">Why leadership was lost; null when the server stops and gives it up.</param>
    private void EndTerm(string? reason)
    {
        CancellationTokenSource? ended;
        lock (gate)
        {
            ended = term;
            term = null;
            if (ended is not null)
            {
                elected = new TaskCompletionSource<CancellationToken>(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }

        if (ended is null)
        {
            return;
        }

        metrics.Leader.WithLabels(serverId).Set(0);
        if (reason is null)
        {
            LogReleased(serverId);
        }
        else
        {
            LogSteppedDown(serverId, reason);
        }

        // Not disposed: loops may still link to its token; a cancelled source without timers holds nothing.
        ended.Cancel();
    }

    [LoggerMessage(EventId = 1610, Level = LogLevel.Information, Message = "Server {ServerId} is now the leader: it runs the reconciler and the other once-only loops")]
    private partial void LogElected(string serverId);

    [LoggerMessage(EventId = 1611, Level = LogLevel.Warning, Message = "Server {ServerId} stopped leading: {Reason}")]
    private partial void LogSteppedDown(string serverId, string reason);

    [LoggerMessage(EventId = 1613, Level = LogLevel.Information, Message = "Server {ServerId} is stopping and gives up leadership")]
    private partial void LogReleased(string serverId);

    [LoggerMessage(EventId = 1612, Level = LogLevel.Warning, Message = "Leader election cannot reach the database (retrying every 2 s): {Reason}")]
    private partial void LogElectionFailed(string reason);
}
