using System.Net;
using System.Net.Http.Json;
using System.Net.WebSockets;
using Limen.Tests.Infrastructure;
using Limen.Tests.RemoteConsole;

namespace Limen.Tests.Events;

/// <summary>
/// Two users work side by side — creates, actions, snapshots, a console session, deletes — each
/// following GET /api/events. Each stream carries exactly that user's own events (every one the
/// database holds for them, none of the other's), and an admin's carries both.
/// </summary>
public sealed class EventVisibilityScriptTests
{
    private static readonly string[] ScriptTypes =
    [
        "vm.created", "vm.state_changed", "vm.updated", "snapshot.created", "snapshot.deleted",
        "console.session.opened", "console.session.closed", "vm.deleted",
    ];

    [Fact]
    public async Task Over_a_scripted_session_of_two_users_each_stream_carries_only_its_users_events()
    {
        await using var server = await LimenTestServer.StartAsync();
        await using var vnc = new FakeVncServer();
        var alice = await UserAsync(server, "evs-alice");
        var bob = await UserAsync(server, "evs-bob");
        var adminToken = await server.AdminTokenAsync();
        await using var aliceStream = await SseClient.ConnectAsync(server.BaseAddress, alice.Token);
        await using var bobStream = await SseClient.ConnectAsync(server.BaseAddress, bob.Token);
        await using var adminStream = await SseClient.ConnectAsync(server.BaseAddress, adminToken);
        var from = await server.Database.ScalarAsync("SELECT coalesce(max(id), 0) FROM events");

        // Interleaved, so that each user's events fall between the other's.
        var aliceVm = await ConsoleKit.CreateWiredVmAsync(server, alice.Client, alice.Image, "script-a", vnc.Port);
        var bobVm = await ConsoleKit.CreateWiredVmAsync(server, bob.Client, bob.Image, "script-b", vnc.Port);
        foreach (var (user, vm) in new[] { (alice, aliceVm), (bob, bobVm) })
        {
            await OkAsync(user.Client.PostAsync($"/api/vms/{vm}/actions/suspend", null));
            await OkAsync(user.Client.PostAsync($"/api/vms/{vm}/actions/resume", null));
            await OkAsync(user.Client.PostAsJsonAsync($"/api/vms/{vm}/snapshots", new { name = "s1" }));
        }

        foreach (var (user, vm) in new[] { (alice, aliceVm), (bob, bobVm) })
        {
            var (_, url) = await ConsoleKit.TicketAsync(user.Client, vm);
            using var socket = await ConsoleKit.OpenAsync(url);
            await ConsoleKit.ReadExactAsync(socket, 12);
            await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
            await OkAsync(user.Client.PostAsync($"/api/vms/{vm}/actions/stop", null));
            await OkAsync(user.Client.PatchAsJsonAsync($"/api/vms/{vm}", new { memory_mb = 96 }));
            var snapshots = await user.Client.GetFromJsonAsync<System.Text.Json.JsonElement>($"/api/vms/{vm}/snapshots");
            await OkAsync(user.Client.DeleteAsync($"/api/vms/{vm}/snapshots/{snapshots[0].GetProperty("id").GetGuid()}"));
            await OkAsync(user.Client.DeleteAsync($"/api/vms/{vm}"));
        }

        // The database is the reference: what it holds for each owner after the script began.
        var aliceIds = await IdsAsync(server, $"owner_id = '{alice.Id}' AND id > {from}");
        var bobIds = await IdsAsync(server, $"owner_id = '{bob.Id}' AND id > {from}");
        var aliceSeen = await aliceStream.TakeAsync(aliceIds.Count, TimeSpan.FromSeconds(10));
        var bobSeen = await bobStream.TakeAsync(bobIds.Count, TimeSpan.FromSeconds(10));
        Assert.Null(await aliceStream.NextAsync(TimeSpan.FromMilliseconds(500)));
        Assert.Null(await bobStream.NextAsync(TimeSpan.FromMilliseconds(500)));

        Assert.Equal(aliceIds, aliceSeen.Select(m => m.SequenceId));
        Assert.Equal(bobIds, bobSeen.Select(m => m.SequenceId));
        foreach (var (seen, own, other, otherVm) in new[] { (aliceSeen, alice, bob, bobVm), (bobSeen, bob, alice, aliceVm) })
        {
            Assert.Superset(ScriptTypes.ToHashSet(), seen.Select(m => m.Event!).ToHashSet());
            Assert.All(seen, m => Assert.Equal(own.Id, m.Json.GetProperty("owner_id").GetGuid()));
            // Not in any field either: no id of the other user or their VM anywhere in the message.
            Assert.All(seen, m => Assert.DoesNotContain(other.Id.ToString(), m.Data!, StringComparison.Ordinal));
            Assert.All(seen, m => Assert.DoesNotContain(otherVm.ToString(), m.Data!, StringComparison.Ordinal));
        }

        // An admin sees both users' events (and the admin-only ones, such as host.up, besides).
        var adminSeen = new HashSet<long>();
        var both = aliceIds.Concat(bobIds).ToHashSet();
        while (!both.IsSubsetOf(adminSeen) && await adminStream.NextAsync(TimeSpan.FromSeconds(10)) is { } message)
        {
            adminSeen.Add(message.SequenceId);
        }

        Assert.Subset(adminSeen, both);
    }

    private sealed record ScriptUser(Guid Id, string Token, HttpClient Client, Guid Image);

    private static async Task<ScriptUser> UserAsync(LimenTestServer server, string username)
    {
        var (id, token) = await server.CreateUserAsync(username);
        return new ScriptUser(id, token, server.Client(token), await VmTestKit.RegisterBlankImageAsync(server, "img-" + username));
    }

    private static async Task<List<long>> IdsAsync(LimenTestServer server, string where)
    {
        var ids = new List<long>();
        await using var connection = new Npgsql.NpgsqlConnection(server.Database.ConnectionString);
        await connection.OpenAsync();
        await using var command = new Npgsql.NpgsqlCommand($"SELECT id FROM events WHERE {where} ORDER BY id", connection);
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            ids.Add(reader.GetInt64(0));
        }

        return ids;
    }

    private static async Task OkAsync(Task<HttpResponseMessage> request)
    {
        var response = await request;
        Assert.True(response.IsSuccessStatusCode, $"{response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
    }
}
