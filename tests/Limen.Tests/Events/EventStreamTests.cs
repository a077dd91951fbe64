using System.Diagnostics;
using System.Net;
using Limen.Data;
using Limen.Features.Events;
using Limen.Tests.Infrastructure;
using Limen.Web;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Limen.Tests.Events;

/// <summary>GET /api/events against real servers and PostgreSQL: delivery, resume, retention, visibility, slow clients, replicas.</summary>
public sealed class EventStreamTests
{
    private static readonly TimeSpan Soon = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task A_published_event_reaches_a_connected_client_as_one_sse_message()
    {
        await using var server = await LimenTestServer.StartAsync();
        var (userId, token) = await server.CreateUserAsync("ev-one");
        await using var stream = await SseClient.ConnectAsync(server.BaseAddress, token);
        Assert.Equal(HttpStatusCode.OK, stream.Response.StatusCode);
        Assert.Equal("text/event-stream", stream.Response.Content.Headers.ContentType?.MediaType);

        var vmId = Guid.NewGuid();
        await Publish(server, new EventDraft(EventTypes.VmStateChanged, userId, vmId,
            new { VmId = vmId, From = "stopped", To = "running", Reason = "api", At = DateTimeOffset.UnixEpoch }));

        var message = await stream.NextAsync(Soon);
        Assert.NotNull(message);
        Assert.Equal(EventTypes.VmStateChanged, message.Event);
        var json = message.Json;
        Assert.Equal(message.SequenceId, json.GetProperty("id").GetInt64());
        Assert.Equal(EventTypes.VmStateChanged, json.GetProperty("type").GetString());
        Assert.Equal(vmId, json.GetProperty("vm_id").GetGuid());
        Assert.Equal(userId, json.GetProperty("owner_id").GetGuid());
        Assert.Equal("running", json.GetProperty("data").GetProperty("to").GetString());
        Assert.Equal(vmId, json.GetProperty("data").GetProperty("vm_id").GetGuid());
        Assert.Equal(await server.Database.ScalarAsync("SELECT max(id) FROM events"), message.SequenceId);
    }

    [Fact]
    public async Task Resuming_with_last_event_id_after_a_dropped_connection_has_no_gap_and_no_duplicate()
    {
        await using var server = await LimenTestServer.StartAsync();
        var token = await server.AdminTokenAsync();
        var first = await SseClient.ConnectAsync(server.BaseAddress, token);
        var published = await PublishMany(server, 20, null);
        var seen = await first.TakeAsync(8, Soon);
        await first.DisposeAsync();
        published.AddRange(await PublishMany(server, 15, null));

        // The header, as EventSource sends it on a reconnect...
        await using (var resumed = await SseClient.ConnectAsync(server.BaseAddress, token, lastEventId: seen[^1].SequenceId))
        {
            var rest = await resumed.TakeAsync(27, Soon);
            Assert.Equal(published, seen.Concat(rest).Select(m => m.SequenceId));
            Assert.Null(await resumed.NextAsync(TimeSpan.FromMilliseconds(500)));
            published.AddRange(await PublishMany(server, 3, null));
            Assert.Equal(published[^3..], (await resumed.TakeAsync(3, Soon)).Select(m => m.SequenceId));
        }

        // ...and the query parameter, for clients that cannot set headers.
        await using var byQuery = await SseClient.ConnectAsync(server.BaseAddress, token, query: $"?last_event_id={published[^5]}");
        Assert.Equal(published[^4..], (await byQuery.TakeAsync(4, Soon)).Select(m => m.SequenceId));
    }

    [Fact]
    public async Task An_id_older_than_retention_gets_a_reset_and_then_the_live_stream()
    {
        await using var server = await LimenTestServer.StartAsync();
        var token = await server.AdminTokenAsync();
        // The server's own first event (its host coming up) lands before the test's, not among them.
        await Eventually.WaitAsync(async () => await server.Database.ScalarAsync("SELECT count(*) FROM events WHERE type = 'host.up'") > 0,
            Soon, "the host.up of the server's start");
        var old = await PublishMany(server, 5, null);
        var kept = await PublishMany(server, 2, null);
        await server.Database.ScalarAsync($"UPDATE events SET at = now() - interval '25 hours' WHERE id <= {old[^1]} RETURNING 0");
        Assert.True(await server.Services.GetRequiredService<EventRetention>().DeleteExpiredAsync(CancellationToken.None) >= old.Count);
        Assert.Equal(0, await server.Database.ScalarAsync($"SELECT count(*) FROM events WHERE id <= {old[^1]}"));
        Assert.Equal(kept[0], await server.Database.ScalarAsync("SELECT min(id) FROM events"));

        // The last deleted id is still a clean resume point; one before it is not.
        await using (var clean = await SseClient.ConnectAsync(server.BaseAddress, token, lastEventId: old[^1]))
        {
            Assert.Equal(kept, (await clean.TakeAsync(2, Soon)).Select(m => m.SequenceId));
        }

        await using var stale = await SseClient.ConnectAsync(server.BaseAddress, token, lastEventId: old[^2]);
        var reset = await stale.NextAsync(Soon);
        Assert.NotNull(reset);
        Assert.Equal(EventFrame.Reset, reset.Event);
        Assert.Equal("expired", reset.Json.GetProperty("reason").GetString());
        Assert.Equal(kept[^1], reset.SequenceId);
        Assert.Null(await stale.NextAsync(TimeSpan.FromMilliseconds(500)));
        var live = await PublishMany(server, 1, null);
        Assert.Equal(live, (await stale.TakeAsync(1, Soon)).Select(m => m.SequenceId));

        // An id this database never handed out is no resume point either.
        await using var foreign = await SseClient.ConnectAsync(server.BaseAddress, token, lastEventId: live[0] + 1000);
        var unknown = await foreign.NextAsync(Soon);
        Assert.Equal(EventFrame.Reset, unknown?.Event);
        Assert.Equal("unknown_id", unknown!.Json.GetProperty("reason").GetString());
    }

    [Fact]
    public async Task Each_stream_carries_only_its_callers_events_and_ownerless_events_reach_admins_only()
    {
        await using var server = await LimenTestServer.StartAsync();
        var (aliceId, alice) = await server.CreateUserAsync("ev-alice");
        var (bobId, bob) = await server.CreateUserAsync("ev-bob");
        var admin = await server.AdminTokenAsync();
        await using var aliceLive = await SseClient.ConnectAsync(server.BaseAddress, alice);
        await using var bobLive = await SseClient.ConnectAsync(server.BaseAddress, bob);
        await using var adminLive = await SseClient.ConnectAsync(server.BaseAddress, admin);

        var owners = new Guid?[] { aliceId, bobId, null, bobId, aliceId, null, aliceId };
        var ids = new List<(long Id, Guid? Owner)>();
        foreach (var owner in owners)
        {
            ids.Add(((await PublishMany(server, 1, owner))[0], owner));
        }

        Assert.Equal(ids.Select(i => i.Id), (await adminLive.TakeAsync(owners.Length, Soon)).Select(m => m.SequenceId));
        Assert.Equal(ids.Where(i => i.Owner == aliceId).Select(i => i.Id), (await aliceLive.TakeAsync(3, Soon)).Select(m => m.SequenceId));
        Assert.Equal(ids.Where(i => i.Owner == bobId).Select(i => i.Id), (await bobLive.TakeAsync(2, Soon)).Select(m => m.SequenceId));
        Assert.Null(await aliceLive.NextAsync(TimeSpan.FromMilliseconds(500)));
        Assert.Null(await bobLive.NextAsync(TimeSpan.FromMilliseconds(100)));

        // Replayed from the table, the same rule.
        await using var bobReplay = await SseClient.ConnectAsync(server.BaseAddress, bob, lastEventId: 0);
        var replay = await bobReplay.TakeAsync(2, Soon);
        Assert.All(replay, m => Assert.Equal(bobId, m.Json.GetProperty("owner_id").GetGuid()));
        Assert.Null(await bobReplay.NextAsync(TimeSpan.FromMilliseconds(500)));
    }

    [Fact]
    public async Task A_client_that_does_not_read_is_cut_off_with_overflow_while_another_keeps_receiving_promptly()
    {
        await using var server = await LimenTestServer.StartAsync(new Dictionary<string, string?> { ["Limen:Events:ClientBufferSize"] = "64" });
        var token = await server.AdminTokenAsync();
        await using var slow = await SseClient.ConnectAsync(server.BaseAddress, token, receiveBuffer: 4096, read: false);
        await using var brisk = await SseClient.ConnectAsync(server.BaseAddress, token);

        // 16 KiB events, 20 per commit (a burst a reading client takes in its stride): a few hundred
        // fill the sockets' buffers, then the slow client's own 64.
        var flood = new List<long>();
        for (var burst = 0; burst < 30; burst++)
        {
            flood.AddRange(await PublishMany(server, 20, null, payloadBytes: 16 * 1024));
            await Task.Delay(20);
        }

        var received = await brisk.TakeAsync(flood.Count, TimeSpan.FromSeconds(60));
        Assert.Equal(flood, received.Select(m => m.SequenceId));

        var probe = Stopwatch.StartNew();
        var probeId = (await PublishMany(server, 1, null))[0];
        var delivered = await brisk.NextAsync(Soon);
        probe.Stop();
        Assert.Equal(probeId, delivered?.SequenceId);
        Assert.True(probe.Elapsed < TimeSpan.FromSeconds(1), $"the reading client got the next event after {probe.ElapsedMilliseconds} ms");

        slow.StartReading();
        var slowGot = await slow.ToEndAsync(TimeSpan.FromSeconds(30));
        Assert.True(slowGot.Count < flood.Count, $"the slow client got all {slowGot.Count} events");
        var last = slowGot[^1];
        Assert.Equal(EventFrame.Overflow, last.Event);
        Assert.Null(last.Id);
        var lastDelivered = slowGot[^2].SequenceId;
        Assert.Equal(lastDelivered, last.Json.GetProperty("last_event_id").GetInt64());
        Assert.Equal(flood.TakeWhile(id => id <= lastDelivered), slowGot[..^1].Select(m => m.SequenceId));
    }

    [Fact]
    public async Task Consumers_get_every_event_of_their_types_in_id_order_and_a_throwing_one_is_skipped()
    {
        // The server may publish a host.down of its own (a libvirt connection dropping under load):
        // the test counts only the events it published itself, marked with its own run id.
        var run = Guid.NewGuid().ToString("N");
        var recorder = new RecordingConsumer([EventTypes.HostDown, EventTypes.HostUp]);
        var logs = new CollectingLoggerProvider();
        await using var server = await LimenTestServer.StartAsync(configureServices: services =>
        {
            services.AddSingleton<IEventConsumer>(new ThrowingConsumer());
            services.AddSingleton<IEventConsumer>(recorder);
            services.AddLogging(logging => logging.AddProvider(logs));
        });
        var outlet = server.Services.GetRequiredService<EventOutlet>();
        await Task.WhenAll(Enumerable.Range(0, 4).Select(async worker =>
        {
            for (var i = 0; i < 10; i++)
            {
                await outlet.PublishAsync(new EventDraft(i % 2 == 0 ? EventTypes.HostDown : EventTypes.AlertReceived, null, null, new { Worker = worker, Run = run }),
                    CancellationToken.None);
            }
        }));
        var hostDown = await server.Database.ScalarAsync($"SELECT count(*) FROM events WHERE type = '{EventTypes.HostDown}' AND data->>'run' = '{run}'");
        Assert.Equal(20, hostDown);

        List<LimenEvent> Ours() => recorder.Seen.Where(e => e.Data.Contains(run, StringComparison.Ordinal)).ToList();
        var deadline = DateTime.UtcNow + Soon;
        while (Ours().Count < 20 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }

        var seen = Ours();
        Assert.Equal(20, seen.Count);
        Assert.All(recorder.Seen, e => Assert.Contains(e.Type, recorder.Types));
        Assert.All(seen, e => Assert.Equal(EventTypes.HostDown, e.Type));
        Assert.Equal(seen.Select(e => e.Id).Order(), seen.Select(e => e.Id));
        await using var db = await server.Services.GetRequiredService<IDbContextFactory<LimenDbContext>>().CreateDbContextAsync();
        var committed = await db.Events.Where(e => e.Type == EventTypes.HostDown).OrderBy(e => e.Id).Select(e => new { e.Id, e.Data }).ToListAsync();
        Assert.Equal(committed.Where(e => e.Data.Contains(run, StringComparison.Ordinal)).Select(e => e.Id), seen.Select(e => e.Id));
        Assert.Contains(logs.Entries, e => e.EventId == 1701 && e.Message.Contains(nameof(ThrowingConsumer), StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_event_committed_through_one_server_reaches_a_client_of_another_within_a_second()
    {
        await using var a = await LimenTestServer.StartAsync();
        await using var b = await LimenTestServer.StartAsync(database: a.Database);
        var (userId, _) = await a.CreateUserAsync("ev-replica");
        // Each test server keeps its own signing key: the user signs in on B.
        var token = await b.LoginAsync("ev-replica", "correct horse battery");
        await using var onB = await SseClient.ConnectAsync(b.BaseAddress, token);
        for (var i = 0; i < 5; i++)
        {
            var clock = Stopwatch.StartNew();
            var id = (await PublishMany(a, 1, userId))[0];
            var message = await onB.NextAsync(Soon);
            clock.Stop();
            Assert.Equal(id, message?.SequenceId);
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"event {id} took {clock.ElapsedMilliseconds} ms from A to B's client");
            Assert.NotEqual(b.Services.GetRequiredService<Limen.Hosting.ServerIdentity>().Id, message!.Json.GetProperty("server_id").GetString());
        }
    }

    [Fact]
    public async Task The_listener_reconnects_after_its_connection_is_killed_and_delivers_what_committed_meanwhile()
    {
        await using var server = await LimenTestServer.StartAsync();
        var token = await server.AdminTokenAsync();
        await using var stream = await SseClient.ConnectAsync(server.BaseAddress, token);
        var before = await PublishMany(server, 2, null);
        Assert.Equal(before, (await stream.TakeAsync(2, Soon)).Select(m => m.SequenceId));

        // The listener's connection is the one whose last statement is its own read of the table.
        var killed = await server.Database.ScalarAsync(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE '%data::text FROM events WHERE id >%'");
        Assert.Equal(1, killed);
        var meanwhile = await PublishMany(server, 3, null);
        Assert.Equal(meanwhile, (await stream.TakeAsync(3, TimeSpan.FromSeconds(20))).Select(m => m.SequenceId));
        var after = await PublishMany(server, 1, null);
        Assert.Equal(after, (await stream.TakeAsync(1, Soon)).Select(m => m.SequenceId));
    }

    [Theory]
    [InlineData("Last-Event-ID", "-1")]
    [InlineData("Last-Event-ID", "abc")]
    [InlineData("Last-Event-ID", "99999999999999999999")]
    [InlineData("last_event_id", "-5")]
    public async Task A_bad_resume_id_is_a_400_naming_it(string field, string value)
    {
        await using var server = await LimenTestServer.StartAsync();
        using var client = server.Client(await server.AdminTokenAsync());
        using var request = new HttpRequestMessage(HttpMethod.Get, field == "last_event_id" ? $"/api/events?last_event_id={value}" : "/api/events");
        if (field != "last_event_id")
        {
            request.Headers.TryAddWithoutValidation(field, value);
        }

        var response = await client.SendAsync(request);
        var problem = await ProblemAssert.IsProblem(response, HttpStatusCode.BadRequest, Problems.Validation);
        Assert.Equal(field, problem.GetProperty("field").GetString());
    }

    [Theory]
    [InlineData("RetentionHours", "0")]
    [InlineData("HeartbeatSeconds", "0")]
    [InlineData("ClientBufferSize", "0")]
    public async Task A_bad_events_setting_fails_the_start_naming_it(string setting, string value)
    {
        var failure = await Assert.ThrowsAnyAsync<Exception>(() =>
            LimenTestServer.StartAsync(new Dictionary<string, string?> { [$"Limen:Events:{setting}"] = value }));
        Assert.Contains($"Limen:Events:{setting}", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_quiet_stream_gets_a_heartbeat_comment()
    {
        await using var server = await LimenTestServer.StartAsync(new Dictionary<string, string?> { ["Limen:Events:HeartbeatSeconds"] = "1" });
        await using var stream = await SseClient.ConnectAsync(server.BaseAddress, await server.AdminTokenAsync());
        var beat = await stream.NextAsync(TimeSpan.FromSeconds(5), comments: true);
        Assert.Equal("heartbeat", beat?.Comment);
    }

    [Fact]
    public async Task Limen_events_prints_one_line_per_event_replayed_and_live()
    {
        await using var server = await LimenTestServer.StartAsync();
        var (userId, token) = await server.CreateUserAsync("ev-cli");
        var replayed = (await PublishMany(server, 1, userId))[0];
        using var cli = LimenProcess.Start(new Dictionary<string, string> { ["LIMEN_TOKEN"] = token },
            "events", "--url", server.BaseAddress.ToString(), "--last-event-id", "0");
        await cli.WaitForOutputAsync(l => l.Contains($" #{replayed} {EventTypes.QuotaChanged} ", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
        var vmId = Guid.NewGuid();
        await Publish(server, new EventDraft(EventTypes.VmStateChanged, userId, vmId, new { VmId = vmId, From = "stopped", To = "running" }));
        await cli.WaitForOutputAsync(l => l.Contains($"{EventTypes.VmStateChanged} vm={vmId} ", StringComparison.Ordinal)
            && l.Contains("\"running\"", StringComparison.Ordinal), Soon);
        Assert.False(cli.HasExited);
    }

    private static Task Publish(LimenTestServer server, EventDraft draft) =>
        server.Services.GetRequiredService<EventOutlet>().PublishAsync(draft, CancellationToken.None);

    /// <summary>Publishes <paramref name="count"/> events in one transaction and returns their ids in order.</summary>
    private static async Task<List<long>> PublishMany(LimenTestServer server, int count, Guid? owner, int payloadBytes = 0)
    {
        var outlet = server.Services.GetRequiredService<EventOutlet>();
        await using var db = await server.Services.GetRequiredService<IDbContextFactory<LimenDbContext>>().CreateDbContextAsync();
        var padding = new string('x', payloadBytes);
        for (var i = 0; i < count; i++)
        {
            outlet.Stage(db, new EventDraft(EventTypes.QuotaChanged, owner, null, new { Index = i, Padding = padding }));
        }

        await db.SaveChangesAsync();
        return db.ChangeTracker.Entries<LimenEvent>().Select(e => e.Entity.Id).Order().ToList();
    }

    private sealed class RecordingConsumer(IReadOnlyCollection<string> types) : IEventConsumer
    {
        public System.Collections.Concurrent.ConcurrentQueue<LimenEvent> Seen { get; } = new();

        public IReadOnlyCollection<string> Types => types;

        public Task ConsumeAsync(LimenEvent committed, CancellationToken cancellationToken)
        {
            Seen.Enqueue(committed);
            return Task.CompletedTask;
        }
    }

    private sealed class ThrowingConsumer : IEventConsumer
    {
        public IReadOnlyCollection<string> Types => [EventTypes.HostDown];

        public Task ConsumeAsync(LimenEvent committed, CancellationToken cancellationToken) =>
            throw new InvalidOperationException("this consumer always fails");
    }
}
