using System.Net;
using Limen.Data;
using Limen.Features.Events;
using Limen.Features.RemoteConsole;
using Limen.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace Limen.Tests.RemoteConsole;

/// <summary>Console sessions when several servers share the database: each row names its relaying server.</summary>
public sealed class ConsoleReplicaTests
{
    private static Dictionary<string, string?> As(string serverId) => new() { ["Limen:ServerId"] = serverId };

    [Fact]
    public async Task A_restarting_server_closes_the_sessions_it_left_open_and_no_other_servers()
    {
        await using var first = await LimenTestServer.StartAsync(As("srv-a"));
        var database = first.Database;
        var (mine, theirs, legacy, ended) = (Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid());
        await database.ScalarAsync($"""
            INSERT INTO console_sessions (id, user_id, vm_id, started_at, last_activity_at, ended_at, end_reason, server_id) VALUES
              ('{mine}', gen_random_uuid(), gen_random_uuid(), now(), now(), NULL, NULL, 'srv-a'),
              ('{theirs}', gen_random_uuid(), gen_random_uuid(), now(), now(), NULL, NULL, 'srv-b'),
              ('{legacy}', gen_random_uuid(), gen_random_uuid(), now(), now(), NULL, NULL, NULL),
              ('{ended}', gen_random_uuid(), gen_random_uuid(), now(), now(), now() - interval '1 hour', 'client_closed', 'srv-a')
            RETURNING 1
            """);

        // srv-a starting again (its previous run crashed with the rows open).
        await using var restarted = await LimenTestServer.StartAsync(As("srv-a"), database: database);

        Assert.Equal("server_restart", await EndReasonAsync(database, mine));
        Assert.Equal("server_restart", await EndReasonAsync(database, legacy));
        Assert.Null(await EndReasonAsync(database, theirs));
        Assert.Equal(1, await database.ScalarAsync($"SELECT count(*) FROM console_sessions WHERE id = '{theirs}' AND ended_at IS NULL"));
        Assert.Equal("client_closed", await EndReasonAsync(database, ended));
        Assert.Equal(1, await database.ScalarAsync(
            $"SELECT count(*) FROM events WHERE type = 'console.session.closed' AND data->>'session_id' = '{mine}' AND data->>'reason' = 'server_restart'"));
        Assert.Equal(0, await database.ScalarAsync($"SELECT count(*) FROM events WHERE data->>'session_id' IN ('{theirs}', '{ended}')"));
    }

    [Fact]
    public async Task A_terminate_request_ends_the_session_only_on_the_server_that_relays_it()
    {
        await using var server = await LimenTestServer.StartAsync(As("srv-a"));
        var sessions = server.Services.GetRequiredService<ConsoleSessions>();
        var consumer = Assert.Single(server.Services.GetServices<IEventConsumer>().OfType<ConsoleTerminateConsumer>());
        Assert.Contains(EventTypes.ConsoleSessionTerminateRequested, consumer.Types);
        User admin;
        await using (var db = await server.Services.GetRequiredService<IDbContextFactory<LimenDbContext>>().CreateDbContextAsync())
        {
            admin = await db.Users.SingleAsync(u => u.Username == "admin");
        }

        var vmId = Guid.NewGuid();
        var live = await sessions.TryStartAsync(admin, vmId, "127.0.0.1", "test", CancellationToken.None);
        Assert.NotNull(live);
        Assert.Equal("srv-a", await ServerOfAsync(server.Database, live.Id));

        await consumer.ConsumeAsync(Request(live.Id, vmId, "srv-b"), CancellationToken.None);
        Assert.Null(live.EndReason);
        Assert.False(live.Ending.IsCancellationRequested);

        await consumer.ConsumeAsync(Request(live.Id, vmId, "srv-a"), CancellationToken.None);
        Assert.Equal(ConsoleEndReasons.AdminTerminated, live.EndReason);
        Assert.True(live.Ending.IsCancellationRequested);

        // What the relay does once both sides are closed: the record keeps the admin's reason.
        await sessions.CompleteAsync(live, admin, ConsoleEndReasons.ClientClosed);
        Assert.Equal("admin_terminated", await EndReasonAsync(server.Database, live.Id));
        Assert.Equal(1, await server.Database.ScalarAsync(
            $"SELECT count(*) FROM events WHERE type = 'console.session.opened' AND data->>'session_id' = '{live.Id}' AND server_id = 'srv-a'"));
        Assert.Equal(1, await server.Database.ScalarAsync(
            $"SELECT count(*) FROM events WHERE type = 'console.session.closed' AND data->>'session_id' = '{live.Id}' AND data->>'reason' = 'admin_terminated'"));
    }

    [Fact]
    public async Task A_terminate_of_a_session_another_server_relays_asks_that_server_and_closes_the_record_when_it_does_not_answer()
    {
        await using var server = await LimenTestServer.StartAsync(As("srv-a"));
        var session = Guid.NewGuid();
        var vmId = Guid.NewGuid();
        await server.Database.ScalarAsync($"""
            INSERT INTO console_sessions (id, user_id, vm_id, started_at, last_activity_at, server_id)
            VALUES ('{session}', gen_random_uuid(), '{vmId}', now(), now(), 'srv-b') RETURNING 1
            """);
        using var admin = server.Client(await server.AdminTokenAsync());

        var response = await admin.DeleteAsync($"/api/console/sessions/{session}");

        // srv-b does not exist here, so nobody confirms: accepted, and the record closed by srv-a.
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        Assert.Equal(1, await server.Database.ScalarAsync(
            $"SELECT count(*) FROM console_sessions WHERE id = '{session}' AND ended_at IS NOT NULL AND end_reason = 'admin_terminated'"));
        Assert.Equal(1, await server.Database.ScalarAsync(
            $"SELECT count(*) FROM events WHERE type = 'console.session.closed' AND data->>'session_id' = '{session}' AND data->>'reason' = 'admin_terminated'"));
        Assert.Equal(1, await server.Database.ScalarAsync(
            $"SELECT count(*) FROM events WHERE type = 'console.session.terminate_requested' AND vm_id = '{vmId}' AND server_id = 'srv-a' " +
            $"AND data->>'session_id' = '{session}' AND data->>'server_id' = 'srv-b'"));
        Assert.Equal(1, await server.Database.ScalarAsync(
            $"SELECT count(*) FROM audit_logs WHERE action = 'console.session.terminate' AND target_id = '{session}' AND details->>'confirmed' = 'false'"));
    }

    private static LimenEvent Request(Guid sessionId, Guid vmId, string relay) => new()
    {
        Type = EventTypes.ConsoleSessionTerminateRequested,
        ServerId = "srv-elsewhere",
        VmId = vmId,
        Data = System.Text.Json.JsonSerializer.Serialize(new ConsoleTerminateRequest(sessionId, vmId, relay), EventOutlet.DataJson),
    };

    private static Task<string?> EndReasonAsync(TestDatabase database, Guid id) => ColumnAsync(database, "end_reason", id);

    private static Task<string?> ServerOfAsync(TestDatabase database, Guid id) => ColumnAsync(database, "server_id", id);

    private static async Task<string?> ColumnAsync(TestDatabase database, string column, Guid id)
    {
        await using var connection = new Npgsql.NpgsqlConnection(database.ConnectionString);
        await connection.OpenAsync();
        await using var command = new Npgsql.NpgsqlCommand($"SELECT {column} FROM console_sessions WHERE id = '{id}'", connection);
        return await command.ExecuteScalarAsync() as string;
    }
}
