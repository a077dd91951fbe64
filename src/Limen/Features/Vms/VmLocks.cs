using System.Collections.Concurrent;
using System.Data;
using Limen.Features.Cluster;
using Npgsql;

namespace Limen.Features.Vms;

/// <summary>
/// Serializes everything that changes one VM (actions, edits, snapshots, delete) across every
/// server on the database; different VMs proceed in parallel. Two layers: a semaphore per VM, so
/// one server waits in memory and holds at most one database connection per VM, and behind it a
/// session-level PostgreSQL advisory lock (single-bigint form, <see cref="Key"/>) on a connection
/// held for the lock's lifetime. The reconciler and recovery skip VMs whose lock is held anywhere
/// (<see cref="TryAcquireAsync"/>).
/// </summary>
public sealed partial class VmLocks(ClusterDatabase database, ILogger<VmLocks> logger)
{
    private readonly ConcurrentDictionary<Guid, SemaphoreSlim> gates = new();

    /// <summary>
    /// The VM's advisory-lock key: the two halves of its id folded into one bigint. The two-int form
    /// (class 19533) is Limen's other locks and never collides with it (pg_locks objsubid 2 vs 1);
    /// two VMs whose ids fold alike only wait for each other, which is harmless.
    /// </summary>
    public static long Key(Guid vmId)
    {
        Span<byte> bytes = stackalloc byte[16];
        vmId.TryWriteBytes(bytes);
        return BitConverter.ToInt64(bytes[..8]) ^ BitConverter.ToInt64(bytes[8..]);
    }

    /// <summary>
    /// Waits for the VM's lock. The wait across servers is PostgreSQL's own lock queue
    /// (`pg_advisory_lock`), so the lock passes on the moment it is released, in arrival order;
    /// cancellation cancels the statement.
    /// </summary>
    public async Task<VmLock> AcquireAsync(Guid vmId, CancellationToken cancellationToken)
    {
        var gate = Gate(vmId);
        await gate.WaitAsync(cancellationToken);
        return await LockAsync(vmId, gate, "SELECT pg_advisory_lock($1)", wait: true, cancellationToken)
            ?? throw new InvalidOperationException("pg_advisory_lock returned without the lock");
    }

    /// <summary>The VM's lock if nobody here or on another server holds it right now, else null: for work that must not wait behind an operation.</summary>
    public async Task<VmLock?> TryAcquireAsync(Guid vmId, CancellationToken cancellationToken)
    {
        var gate = Gate(vmId);
        if (!gate.Wait(0, CancellationToken.None))
        {
            return null;
        }

        return await LockAsync(vmId, gate, "SELECT pg_try_advisory_lock($1)", wait: false, cancellationToken);
    }

    private SemaphoreSlim Gate(Guid vmId) => gates.GetOrAdd(vmId, _ => new SemaphoreSlim(1, 1));

    /// <summary>Takes the advisory lock behind the held gate; the gate is released again unless a lock is returned.</summary>
    private async Task<VmLock?> LockAsync(Guid vmId, SemaphoreSlim gate, string sql, bool wait, CancellationToken cancellationToken)
    {
        NpgsqlConnection? connection = null;
        try
        {
            connection = await database.OpenPooledAsync(cancellationToken);
            bool taken;
            await using (var command = new NpgsqlCommand(sql, connection) { CommandTimeout = wait ? 0 : 30 })
            {
                command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = Key(vmId) });
                var result = await command.ExecuteScalarAsync(cancellationToken);
                taken = !wait ? (bool)result! : true;
            }

            if (!taken)
            {
                await connection.DisposeAsync();
                gate.Release();
                return null;
            }

            return new VmLock(this, vmId, gate, connection);
        }
        catch
        {
            // Cancelled or failed half-way: whether PostgreSQL granted the lock is unknown, so let it
            // go before the connection returns to the pool (an unlock of a lock not held is a no-op).
            if (connection is not null)
            {
                await UnlockQuietlyAsync(vmId, connection);
                await connection.DisposeAsync();
            }

            gate.Release();
            throw;
        }
    }

    /// <summary>
    /// Unlocks on the lock's connection. When that fails the connection is broken: Npgsql drops it
    /// instead of pooling it, and its backend — with the lock — ends with it.
    /// </summary>
    private async Task<bool> UnlockQuietlyAsync(Guid vmId, NpgsqlConnection connection)
    {
        try
        {
            if (connection.State != ConnectionState.Open)
            {
                return false;
            }

            await using var command = new NpgsqlCommand("SELECT pg_advisory_unlock($1)", connection) { CommandTimeout = 5 };
            command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = Key(vmId) });
            return (bool)(await command.ExecuteScalarAsync(CancellationToken.None))!;
        }
        catch (Exception e) when (e is NpgsqlException or InvalidOperationException or TimeoutException)
        {
            LogUnlockFailed(vmId, e.Message);
            return false;
        }
    }

    /// <summary>
    /// One held VM lock. <see cref="IsHeld"/> turns false (and <see cref="Lost"/> is cancelled) as
    /// soon as its connection is known broken — Npgsql's keepalive notices within seconds even
    /// while the holder is busy elsewhere — because PostgreSQL may then have released the lock.
    /// Only asynchronously disposable: releasing is a round trip to PostgreSQL, and an operation's
    /// answer must not leave before its VM is free again.
    /// </summary>
    public sealed class VmLock : IAsyncDisposable
    {
        private readonly VmLocks owner;
        private readonly Guid vmId;
        private readonly SemaphoreSlim gate;
        private readonly NpgsqlConnection connection;
        private readonly CancellationTokenSource lost = new();
        private Task? release;
        private int held = 1;

        internal VmLock(VmLocks owner, Guid vmId, SemaphoreSlim gate, NpgsqlConnection connection)
        {
            this.owner = owner;
            this.vmId = vmId;
            this.gate = gate;
            this.connection = connection;
            connection.StateChange += OnStateChange;
        }

        public bool IsHeld => Volatile.Read(ref held) == 1 && connection.State == ConnectionState.Open;

        public CancellationToken Lost => lost.Token;

        private void OnStateChange(object sender, StateChangeEventArgs e)
        {
            if (e.CurrentState is ConnectionState.Closed or ConnectionState.Broken && Interlocked.Exchange(ref held, 0) == 1)
            {
                owner.LogLockLost(vmId);
                lost.Cancel();
            }
        }

        public ValueTask DisposeAsync() => new(ReleaseOnce());

        private Task ReleaseOnce()
        {
            lock (lost)
            {
                return release ??= ReleaseAsync();
            }
        }

        private async Task ReleaseAsync()
        {
            try
            {
                if (Interlocked.Exchange(ref held, 0) == 1)
                {
                    connection.StateChange -= OnStateChange;
                    await owner.UnlockQuietlyAsync(vmId, connection);
                }

                await connection.DisposeAsync();
            }
            finally
            {
                gate.Release();
            }
        }
    }

    [LoggerMessage(EventId = 1600, Level = LogLevel.Warning, Message = "The lock of VM {VmId} was lost while held: its database connection broke, so another server may now take it")]
    internal partial void LogLockLost(Guid vmId);

    [LoggerMessage(EventId = 1601, Level = LogLevel.Warning, Message = "Could not unlock VM {VmId} on its connection, which is dropped instead (its backend takes the lock along): {Reason}")]
    private partial void LogUnlockFailed(Guid vmId, string reason);
}
