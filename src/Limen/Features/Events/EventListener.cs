using System.Globalization;
using System.Threading.Channels;
using Limen.Data;
using Limen.Features.Health;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace Limen.Features.Events;

/// <summary>
/// Brings every committed event to this server: one connection of its own does
/// <c>LISTEN limen_events</c>; on a notification (and at least every <see cref="PollInterval"/>) it
/// reads the rows after its cursor in id order, hands them to the <see cref="EventHub"/> and queues
/// them for the <see cref="IEventConsumer"/>s. Ids are handed out in commit order, so reading by
/// cursor misses nothing. When PostgreSQL goes away, the attempt fails, <see cref="BackgroundLoop"/>
/// backs off, and the next connection catches up from the cursor. Runs on every server.
/// </summary>
public sealed partial class EventListener : BackgroundLoop
{
    public const string Channel = "limen_events";

    /// <summary>Rows read per query; a longer backlog takes several.</summary>
    public const int BatchSize = 500;

    /// <summary>Longest wait without reading: a lost notification costs at most this, and health stays fresh.</summary>
    public static readonly TimeSpan PollInterval = TimeSpan.FromSeconds(5);

    private readonly IDbContextFactory<LimenDbContext> dbFactory;
    private readonly EventHub hub;
    private readonly IEventConsumer[] consumers;
    private readonly ILogger<EventListener> logger;
    private readonly Channel<LimenEvent> consumerQueue = System.Threading.Channels.Channel.CreateUnbounded<LimenEvent>(
        new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });

    private NpgsqlConnection? connection;
    private long cursor = -1;
    private long notified;

    public EventListener(
        IDbContextFactory<LimenDbContext> dbFactory, EventHub hub, IEnumerable<IEventConsumer> consumers, LoopHealth loops, TimeProvider clock,
        ILogger<EventListener> logger)
        : base(loops, clock, logger)
    {
        this.dbFactory = dbFactory;
        this.hub = hub;
        this.consumers = consumers.ToArray();
        this.logger = logger;
    }

    public override string Name => "event_listener";

    /// <summary>The id of the last event this server has read (-1 before its first connection).</summary>
    public long Cursor => Interlocked.Read(ref cursor);

    protected override TimeSpan Interval => TimeSpan.Zero;

    /// <summary>
    /// Connects before the server takes requests (hosted services start before Kestrel), so a client
    /// that connects right after start is live from its first moment. If that fails, the loop retries.
    /// </summary>
    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            await ConnectAsync(cancellationToken);
        }
        catch (Exception) when (!cancellationToken.IsCancellationRequested)
        {
            // The first attempt of the loop reports and logs it.
            await DropConnectionAsync();
        }

        await base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            // Consumers run apart from the fan-out: a slow one delays other consumers, never a client.
            await Task.WhenAll(base.ExecuteAsync(stoppingToken), ConsumeAsync(stoppingToken));
        }
        finally
        {
            await DropConnectionAsync();
        }
    }

    protected override async Task RunOnceAsync(CancellationToken cancellationToken)
    {
        try
        {
            if (connection is null)
            {
                await ConnectAsync(cancellationToken);
            }

            if (Interlocked.Read(ref notified) <= Cursor)
            {
                await connection!.WaitAsync(PollInterval, cancellationToken);
            }

            await DrainAsync(cancellationToken);
        }
        catch
        {
            await DropConnectionAsync();
            throw;
        }
    }

    private async Task ConnectAsync(CancellationToken cancellationToken)
    {
        string connectionString;
        await using (var db = await dbFactory.CreateDbContextAsync(cancellationToken))
        {
            connectionString = db.Database.GetConnectionString()!;
        }

        // Its own connection, outside the pool: LISTEN belongs to a session. Keepalives find a
        // PostgreSQL that vanished without closing the socket.
        var builder = new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false, KeepAlive = 15 };
        connection = new NpgsqlConnection(builder.ConnectionString);
        connection.Notification += OnNotification;
        await connection.OpenAsync(cancellationToken);
        await using (var listen = new NpgsqlCommand($"LISTEN {Channel}", connection))
        {
            await listen.ExecuteNonQueryAsync(cancellationToken);
        }

        if (Cursor < 0)
        {
            // The first connection starts at what is committed now: the stream is live from here.
            // After LISTEN, so an event committed in between is both counted here or notified later.
            await using var last = new NpgsqlCommand("SELECT coalesce(max(id), 0) FROM events", connection);
            Interlocked.Exchange(ref cursor, Convert.ToInt64(await last.ExecuteScalarAsync(cancellationToken), CultureInfo.InvariantCulture));
        }
        else
        {
            LogReconnected(logger, Cursor);
        }
    }

    private void OnNotification(object sender, NpgsqlNotificationEventArgs e)
    {
        if (long.TryParse(e.Payload, NumberStyles.None, CultureInfo.InvariantCulture, out var id))
        {
            long seen;
            while (id > (seen = Interlocked.Read(ref notified)) && Interlocked.CompareExchange(ref notified, id, seen) != seen)
            {
            }
        }
    }

    /// <summary>Reads everything after the cursor, page by page, and hands it on.</summary>
    private async Task DrainAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var rows = await ReadAfterAsync(Cursor, cancellationToken);
            if (rows.Count == 0)
            {
                return;
            }

            hub.Publish(rows.ConvertAll(EventFrame.Of));
            if (consumers.Length > 0)
            {
                foreach (var row in rows)
                {
                    consumerQueue.Writer.TryWrite(row);
                }
            }

            Interlocked.Exchange(ref cursor, rows[^1].Id);
            if (rows.Count < BatchSize)
            {
                return;
            }
        }
    }

    private async Task<List<LimenEvent>> ReadAfterAsync(long after, CancellationToken cancellationToken)
    {
        await using var read = new NpgsqlCommand(
            "SELECT id, type, at, owner_id, vm_id, server_id, data::text FROM events WHERE id > $1 ORDER BY id LIMIT $2", connection)
        {
            Parameters = { new() { Value = after }, new() { Value = BatchSize } },
        };
        await using var reader = await read.ExecuteReaderAsync(cancellationToken);
        var rows = new List<LimenEvent>();
        while (await reader.ReadAsync(cancellationToken))
        {
            rows.Add(new LimenEvent
            {
                Id = reader.GetInt64(0),
                Type = reader.GetString(1),
                At = reader.GetFieldValue<DateTimeOffset>(2),
                OwnerId = reader.IsDBNull(3) ? null : reader.GetGuid(3),
                VmId = reader.IsDBNull(4) ? null : reader.GetGuid(4),
                ServerId = reader.GetString(5),
                Data = reader.GetString(6),
            });
        }

        return rows;
    }

    private async Task ConsumeAsync(CancellationToken stoppingToken)
    {
        if (consumers.Length == 0)
        {
            return;
        }

        try
        {
            await foreach (var row in consumerQueue.Reader.ReadAllAsync(stoppingToken))
            {
                foreach (var consumer in consumers)
                {
                    if (!consumer.Types.Contains(row.Type))
                    {
                        continue;
                    }

                    try
                    {
                        await consumer.ConsumeAsync(row, stoppingToken);
                    }
                    catch (Exception e) when (!stoppingToken.IsCancellationRequested)
                    {
                        LogConsumerFailed(logger, consumer.GetType().Name, row.Id, row.Type, e);
                    }
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // The host is stopping.
        }
    }

    private async Task DropConnectionAsync()
    {
        if (connection is { } open)
        {
            connection = null;
            open.Notification -= OnNotification;
            await open.DisposeAsync();
        }
    }

    [LoggerMessage(EventId = 1700, Level = LogLevel.Information, Message = "Event listener connected again; catching up after event {Cursor}")]
    private static partial void LogReconnected(ILogger logger, long cursor);

    [LoggerMessage(EventId = 1701, Level = LogLevel.Error, Message = "Event consumer {Consumer} failed on event {EventId} ({EventType}); it is skipped")]
    private static partial void LogConsumerFailed(ILogger logger, string consumer, long eventId, string eventType, Exception exception);
}
