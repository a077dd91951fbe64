using System.Net;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;
using Limen.Features.RemoteConsole;
using Limen.Tests.Infrastructure;
using Limen.Web;
using Microsoft.Extensions.DependencyInjection;

namespace Limen.Tests.RemoteConsole;

public sealed class ConsoleServerFixture : IAsyncLifetime
{
    public const string ExtraOrigin = "https://console.example.com";

    private LimenTestServer? server;

    public LimenTestServer Server => server ?? throw new InvalidOperationException("not started");

    public async Task InitializeAsync() => server = await LimenTestServer.StartAsync(new Dictionary<string, string?>
    {
        ["Limen:Console:AllowedOrigins:0"] = ExtraOrigin,
        ["Limen:Console:SweepSeconds"] = "1",
    });

    public async Task DisposeAsync()
    {
        if (server is not null)
        {
            await server.DisposeAsync();
        }
    }
}

/// <summary>
/// The console on libvirt's test driver, with a stand-in VNC server the domain XML points at:
/// tickets, refusals, limits, session ends and backpressure, fast. The real-guest RFB and browser
/// tests are in <see cref="ConsoleRealGuestTests"/>. The tests share one server, and a session of
/// one test may still be closing when the next starts, so each asserts its own sessions (its rows,
/// its session ids); the one that asserts the server-wide gauge has a server of its own.
/// </summary>
public sealed class ConsoleTests(ConsoleServerFixture fixture, Xunit.Abstractions.ITestOutputHelper output) : IClassFixture<ConsoleServerFixture>
{
    private LimenTestServer Server => fixture.Server;

    private Task<Owner> OwnerAsync(string username) => OwnerAsync(Server, username);

    private static async Task<Owner> OwnerAsync(LimenTestServer server, string username)
    {
        var (id, token) = await server.CreateUserAsync(username);
        var image = await VmTestKit.RegisterBlankImageAsync(server, "img-" + username);
        return new Owner(id, token, server.Client(token), image);
    }

    private sealed record Owner(Guid Id, string Token, HttpClient Client, Guid Image);

    private Task<long> Count(string sql) => Server.Database.ScalarAsync(sql);

    /// <summary>This user's sessions not yet recorded as ended.</summary>
    private Task<long> OpenSessions(Owner owner) => Count($"SELECT count(*) FROM console_sessions WHERE user_id = '{owner.Id}' AND ended_at IS NULL");

    private Task WaitForNoOpenSessionsAsync(Owner owner) =>
        ConsoleKit.WaitForAsync(async () => await OpenSessions(owner) == 0, TimeSpan.FromSeconds(10), $"{owner.Id}'s sessions to be recorded as ended");

    private bool IsRelayed(Guid sessionId) => Server.Services.GetRequiredService<ConsoleSessions>().Find(sessionId) is not null;

    [Fact]
    public async Task A_ticket_has_256_random_bits_lives_30_seconds_is_stored_only_hashed_and_its_issue_is_audited()
    {
        await using var vnc = new FakeVncServer();
        var alice = await OwnerAsync("ticket-alice");
        var vm = await ConsoleKit.CreateWiredVmAsync(Server, alice.Client, alice.Image, "ticketed", vnc.Port);

        var before = DateTimeOffset.UtcNow;
        var response = await ProblemAssert.Json(await alice.Client.PostAsync($"/api/vms/{vm}/console", null));

        var ticket = response.GetProperty("ticket").GetString()!;
        Assert.Equal(32, System.Buffers.Text.Base64Url.DecodeFromChars(ticket).Length);
        Assert.Equal($"ws://{Server.BaseAddress.Authority}/vnc/{vm}?ticket={ticket}", response.GetProperty("ws_url").GetString());
        var expires = response.GetProperty("expires_at").GetDateTimeOffset();
        Assert.InRange(expires - before, TimeSpan.FromSeconds(29), TimeSpan.FromSeconds(32));
        var hash = Convert.ToHexStringLower(SHA256.HashData(System.Buffers.Text.Base64Url.DecodeFromChars(ticket)));
        Assert.Equal(1, await Count($"SELECT count(*) FROM console_tickets WHERE encode(token_hash, 'hex') = '{hash}' AND user_id = '{alice.Id}' AND vm_id = '{vm}' AND used_at IS NULL"));
        Assert.Equal(0, await Count($"SELECT count(*) FROM console_tickets t WHERE t::text LIKE '%{ticket}%'"));
        Assert.Equal(1, await Count($"SELECT count(*) FROM audit_logs WHERE action = 'console.ticket.issue' AND result = 'success' AND target_id = '{vm}' AND user_id = '{alice.Id}'"));
        Assert.Equal(0, vnc.Connections);
    }

    [Fact]
    public async Task A_session_relays_bytes_both_ways_unchanged_and_is_recorded_gauged_and_audited_from_start_to_end()
    {
        // A server of its own: the gauge and the counters count every session of their server.
        await using var server = await LimenTestServer.StartAsync();
        await using var vnc = new FakeVncServer();
        var owner = await OwnerAsync(server, "relay-owner");
        var vm = await ConsoleKit.CreateWiredVmAsync(server, owner.Client, owner.Image, "relayed", vnc.Port);
        var (_, url) = await ConsoleKit.TicketAsync(owner.Client, vm);
        var sessions = server.Services.GetRequiredService<ConsoleSessions>();
        Task<long> Count(string sql) => server.Database.ScalarAsync(sql);

        using var socket = await ConsoleKit.OpenAsync(url, origin: $"http://{server.BaseAddress.Authority}");

        Assert.Equal("binary", socket.SubProtocol);
        Assert.Equal(FakeVncServer.Greeting, Encoding.ASCII.GetString(await ConsoleKit.ReadExactAsync(socket, 12)));
        var payload = RandomNumberGenerator.GetBytes(200_000);
        await socket.SendAsync(payload, WebSocketMessageType.Binary, true, CancellationToken.None);
        Assert.Equal(payload, await ConsoleKit.ReadExactAsync(socket, payload.Length));
        Assert.Equal(payload.Length, vnc.BytesReceived);
        Assert.Equal(1, await ConsoleKit.GaugeAsync(server));
        Assert.Equal(1, sessions.LiveCount);
        Assert.Equal(1, await Count($"SELECT count(*) FROM console_sessions WHERE user_id = '{owner.Id}' AND vm_id = '{vm}' AND ended_at IS NULL AND client_ip = '127.0.0.1'"));
        var mine = await ConsoleKit.SessionAsync(owner.Client, vm);
        Assert.True(mine.GetProperty("active").GetBoolean());

        await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", CancellationToken.None);

        await ConsoleKit.WaitForAsync(async () => await Count($"SELECT count(*) FROM console_sessions WHERE vm_id = '{vm}' AND end_reason = 'client_closed'") == 1,
            TimeSpan.FromSeconds(10), "the session to be recorded as ended");
        Assert.Equal(0, await ConsoleKit.GaugeAsync(server));
        Assert.Equal(0, sessions.LiveCount);
        Assert.Equal(1, await Count($"SELECT count(*) FROM audit_logs WHERE action = 'console.session.start' AND target_id = '{vm}' AND user_id = '{owner.Id}'"));
        Assert.Equal(1, await Count($"SELECT count(*) FROM audit_logs WHERE action = 'console.session.end' AND target_id = '{vm}' AND details->>'reason' = 'client_closed'"));
        var metrics = await server.MetricsAsync();
        Assert.Equal(1, ProblemAssert.Sample(metrics, "console_sessions_started_total"));
        Assert.Equal(1, ProblemAssert.Sample(metrics, "console_sessions_ended_total", "reason=\"client_closed\""));
    }

    [Fact]
    public async Task A_reused_ticket_one_for_another_vm_and_one_presented_by_another_user_are_refused_before_vnc_and_audited()
    {
        await using var vncA = new FakeVncServer();
        await using var vncB = new FakeVncServer();
        var alice = await OwnerAsync("reuse-alice");
        var (_, bobToken) = await Server.CreateUserAsync("reuse-bob");
        var vmA = await ConsoleKit.CreateWiredVmAsync(Server, alice.Client, alice.Image, "vm-a", vncA.Port);
        var vmB = await ConsoleKit.CreateWiredVmAsync(Server, alice.Client, alice.Image, "vm-b", vncB.Port);
        var metricsBefore = await Server.MetricsAsync();

        // Used once (fine), then again.
        var (used, usedUrl) = await ConsoleKit.TicketAsync(alice.Client, vmA);
        using (var first = await ConsoleKit.OpenAsync(usedUrl))
        {
            await ConsoleKit.ReadExactAsync(first, 12);
            await first.CloseAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
        }

        var connectionsAfterFirst = vncA.Connections;
        await AssertRefusedAsync(await ConsoleKit.RefusedUpgradeAsync(Server, vmA, used), TicketRejections.Reused);

        // A ticket for VM A presented at VM B's console.
        var (forA, _) = await ConsoleKit.TicketAsync(alice.Client, vmA);
        await AssertRefusedAsync(await ConsoleKit.RefusedUpgradeAsync(Server, vmB, forA), TicketRejections.WrongVm);
        // Consumed by that attempt: not usable at A either.
        await AssertRefusedAsync(await ConsoleKit.RefusedUpgradeAsync(Server, vmA, forA), TicketRejections.Reused);

        // Bob, signed in, presents Alice's ticket.
        var (aliceTicket, _) = await ConsoleKit.TicketAsync(alice.Client, vmA);
        await AssertRefusedAsync(await ConsoleKit.RefusedUpgradeAsync(Server, vmA, aliceTicket, bearer: bobToken), TicketRejections.WrongUser);

        Assert.Equal(connectionsAfterFirst, vncA.Connections);
        Assert.Equal(0, vncB.Connections);
        // The counters are the server's, but only this test refuses tickets while it runs: compare with before.
        var metricsAfter = await Server.MetricsAsync();
        foreach (var (reason, times) in new[] { ("reused", 2), ("wrong_vm", 1), ("wrong_user", 1) })
        {
            Assert.Equal(times, await Count($"SELECT count(*) FROM audit_logs WHERE action = 'console.connect' AND result = 'denied' AND error_code = '{reason}' AND target_id IN ('{vmA}', '{vmB}')"));
            var label = $"reason=\"{reason}\"";
            Assert.Equal(times, ProblemAssert.Sample(metricsAfter, "console_ticket_rejected_total", label) - ProblemAssert.Sample(metricsBefore, "console_ticket_rejected_total", label));
        }
    }

    [Fact]
    public async Task No_ticket_a_garbage_ticket_or_an_access_token_in_its_place_gets_401_and_nothing_reaches_vnc()
    {
        await using var vnc = new FakeVncServer();
        var owner = await OwnerAsync("no-ticket");
        var vm = await ConsoleKit.CreateWiredVmAsync(Server, owner.Client, owner.Image, "guarded", vnc.Port);

        await AssertRefusedAsync(await ConsoleKit.RefusedUpgradeAsync(Server, vm, null), TicketRejections.Missing);
        // A valid access token in the header does not stand in for a ticket.
        await AssertRefusedAsync(await ConsoleKit.RefusedUpgradeAsync(Server, vm, null, bearer: owner.Token), TicketRejections.Missing);
        await AssertRefusedAsync(await ConsoleKit.RefusedUpgradeAsync(Server, vm, "garbage"), TicketRejections.Unknown);
        await AssertRefusedAsync(await ConsoleKit.RefusedUpgradeAsync(Server, vm, new string('A', 43)), TicketRejections.Unknown);
        await AssertRefusedAsync(await ConsoleKit.RefusedUpgradeAsync(Server, vm, owner.Token), TicketRejections.Unknown);

        // The same through a real WebSocket client: the handshake fails with 401.
        using var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        await Assert.ThrowsAsync<WebSocketException>(() => socket.ConnectAsync(ConsoleKit.VncUrl(Server, vm, owner.Token), CancellationToken.None));
        Assert.Equal(HttpStatusCode.Unauthorized, socket.HttpStatusCode);

        Assert.Equal(0, vnc.Connections);
        Assert.Equal(0, await Count($"SELECT count(*) FROM console_sessions WHERE vm_id = '{vm}'"));
    }

    [Fact]
    public async Task A_foreign_origin_gets_403_without_using_the_ticket_while_own_and_configured_origins_pass()
    {
        await using var vnc = new FakeVncServer();
        var owner = await OwnerAsync("origin-owner");
        var vm = await ConsoleKit.CreateWiredVmAsync(Server, owner.Client, owner.Image, "origin", vnc.Port);
        var (ticket, url) = await ConsoleKit.TicketAsync(owner.Client, vm);

        foreach (var foreign in new[] { "https://evil.example", "http://127.0.0.1:1", "null", $"http://{Server.BaseAddress.Authority}.evil.example" })
        {
            var refused = await ConsoleKit.RefusedUpgradeAsync(Server, vm, ticket, origin: foreign);
            await ProblemAssert.IsProblem(refused, HttpStatusCode.Forbidden, Problems.Forbidden);
        }

        Assert.Equal(0, vnc.Connections);
        Assert.True(await Count($"SELECT count(*) FROM audit_logs WHERE action = 'console.connect' AND error_code = 'origin' AND target_id = '{vm}'") >= 4);
        // Refused before the ticket was looked at: it still works from Limen's own page.
        using (var own = await ConsoleKit.OpenAsync(url, origin: $"http://{Server.BaseAddress.Authority}"))
        {
            await ConsoleKit.ReadExactAsync(own, 12);
            await own.CloseAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
        }

        var (_, second) = await ConsoleKit.TicketAsync(owner.Client, vm);
        using var configured = await ConsoleKit.OpenAsync(second, origin: ConsoleServerFixture.ExtraOrigin);
        await ConsoleKit.ReadExactAsync(configured, 12);
        await configured.CloseAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
    }

    [Fact]
    public async Task A_third_concurrent_session_gets_429_at_ticket_and_at_connect_and_racing_connects_cannot_both_take_the_last_slot()
    {
        await using var vnc = new FakeVncServer();
        var owner = await OwnerAsync("limit-owner");
        var vm = await ConsoleKit.CreateWiredVmAsync(Server, owner.Client, owner.Image, "limited", vnc.Port);
        var tickets = new List<(string Ticket, Uri Url)>();
        for (var i = 0; i < 3; i++)
        {
            tickets.Add(await ConsoleKit.TicketAsync(owner.Client, vm));
        }

        using var first = await ConsoleKit.OpenAsync(tickets[0].Url);
        await ConsoleKit.ReadExactAsync(first, 12);
        // Two connects race for the one slot left.
        var racers = await Task.WhenAll(tickets.Skip(1).Select(async t =>
        {
            var socket = new ClientWebSocket();
            socket.Options.CollectHttpResponseDetails = true;
            try
            {
                await socket.ConnectAsync(t.Url, CancellationToken.None);
                return (Socket: socket, Status: socket.HttpStatusCode);
            }
            catch (WebSocketException)
            {
                return (Socket: (ClientWebSocket?)null, Status: socket.HttpStatusCode);
            }
        }));

        Assert.Single(racers, r => r.Socket is not null);
        Assert.Equal(HttpStatusCode.TooManyRequests, Assert.Single(racers, r => r.Socket is null).Status);
        Assert.Equal(2, await OpenSessions(owner));
        var open = await ProblemAssert.Json(await owner.Client.GetAsync("/api/console/sessions?active=true"));
        Assert.Equal(2, open.GetProperty("total").GetInt32());
        Assert.All(open.GetProperty("items").EnumerateArray(), s => Assert.True(IsRelayed(s.GetProperty("id").GetGuid())));
        var denied = await owner.Client.PostAsync($"/api/vms/{vm}/console", null);
        var problem = await ProblemAssert.IsProblem(denied, HttpStatusCode.TooManyRequests, ConsoleProblems.SessionLimit);
        Assert.Equal(2, problem.GetProperty("limit").GetInt32());
        Assert.True(await Count($"SELECT count(*) FROM audit_logs WHERE action = 'console.connect' AND error_code = 'session_limit' AND user_id = '{owner.Id}'") >= 1);

        first.Abort();
        foreach (var racer in racers)
        {
            racer.Socket?.Abort();
        }

        await WaitForNoOpenSessionsAsync(owner);
        // A slot is free again.
        var (_, again) = await ConsoleKit.TicketAsync(owner.Client, vm);
        using var afterwards = await ConsoleKit.OpenAsync(again);
        await ConsoleKit.ReadExactAsync(afterwards, 12);
        afterwards.Abort();
    }

    [Fact]
    public async Task The_third_connect_with_a_ticket_issued_earlier_gets_a_429_problem()
    {
        await using var vnc = new FakeVncServer();
        var owner = await OwnerAsync("limit-late");
        var vm = await ConsoleKit.CreateWiredVmAsync(Server, owner.Client, owner.Image, "late", vnc.Port);
        var tickets = new List<(string Ticket, Uri Url)>();
        for (var i = 0; i < 3; i++)
        {
            tickets.Add(await ConsoleKit.TicketAsync(owner.Client, vm));
        }

        using var one = await ConsoleKit.OpenAsync(tickets[0].Url);
        using var two = await ConsoleKit.OpenAsync(tickets[1].Url);
        var connections = vnc.Connections;

        var third = await ConsoleKit.RefusedUpgradeAsync(Server, vm, tickets[2].Ticket);

        var problem = await ProblemAssert.IsProblem(third, HttpStatusCode.TooManyRequests, ConsoleProblems.SessionLimit);
        Assert.Equal(2, problem.GetProperty("limit").GetInt32());
        Assert.Equal(connections, vnc.Connections);
        Assert.Equal(2, await OpenSessions(owner));
        one.Abort();
        two.Abort();
        await WaitForNoOpenSessionsAsync(owner);
    }

    [Fact]
    public async Task A_stopped_vm_gets_409_and_another_users_vm_404_and_a_plain_get_426()
    {
        await using var vnc = new FakeVncServer();
        var alice = await OwnerAsync("state-alice");
        var (_, bobToken) = await Server.CreateUserAsync("state-bob");
        using var bob = Server.Client(bobToken);
        var vm = await ConsoleKit.CreateWiredVmAsync(Server, alice.Client, alice.Image, "stateful", vnc.Port);

        await ProblemAssert.IsProblem(await bob.PostAsync($"/api/vms/{vm}/console", null), HttpStatusCode.NotFound, Problems.NotFound);
        await ProblemAssert.IsProblem(await bob.PostAsync($"/api/vms/{Guid.NewGuid()}/console", null), HttpStatusCode.NotFound, Problems.NotFound);
        using var anonymous = Server.Client();
        await ProblemAssert.IsProblem(await anonymous.PostAsync($"/api/vms/{vm}/console", null), HttpStatusCode.Unauthorized, Problems.Unauthorized);
        var (ticket, _) = await ConsoleKit.TicketAsync(alice.Client, vm);
        var plain = await alice.Client.GetAsync($"/vnc/{vm}?ticket={ticket}");
        await ProblemAssert.IsProblem(plain, HttpStatusCode.UpgradeRequired, ConsoleProblems.UpgradeRequired);

        Assert.Equal(HttpStatusCode.OK, (await alice.Client.PostAsync($"/api/vms/{vm}/actions/stop", null)).StatusCode);
        var stopped = await ProblemAssert.IsProblem(await alice.Client.PostAsync($"/api/vms/{vm}/console", null), HttpStatusCode.Conflict, Problems.InvalidState);
        Assert.Equal("stopped", stopped.GetProperty("state").GetString());
        // The ticket from before the stop (not used by the plain GET) finds no VNC server to go to.
        await ProblemAssert.IsProblem(await ConsoleKit.RefusedUpgradeAsync(Server, vm, ticket), HttpStatusCode.Conflict, Problems.InvalidState);
        Assert.Equal(0, vnc.Connections);
    }

    [Fact]
    public async Task Stopping_deleting_or_destroying_the_vm_ends_its_session_with_that_reason_and_stops_relaying_it()
    {
        await using var vnc = new FakeVncServer();
        var owner = await OwnerAsync("vm-ends");
        foreach (var (how, reason) in new[] { ("stop", "vm_stopped"), ("delete", "vm_deleted"), ("destroy", "vm_stopped") })
        {
            var vm = await ConsoleKit.CreateWiredVmAsync(Server, owner.Client, owner.Image, "ends-" + how, vnc.Port);
            var (_, url) = await ConsoleKit.TicketAsync(owner.Client, vm);
            using var socket = await ConsoleKit.OpenAsync(url);
            await ConsoleKit.ReadExactAsync(socket, 12);
            var session = (await ConsoleKit.SessionAsync(owner.Client, vm)).GetProperty("id").GetGuid();
            Assert.True(IsRelayed(session));

            switch (how)
            {
                case "stop":
                    Assert.Equal(HttpStatusCode.OK, (await owner.Client.PostAsync($"/api/vms/{vm}/actions/stop", null)).StatusCode);
                    break;
                case "delete":
                    Assert.Equal(HttpStatusCode.NoContent, (await owner.Client.DeleteAsync($"/api/vms/{vm}")).StatusCode);
                    break;
                default:
                    // Behind Limen's back, as `virsh destroy` would: QEMU's VNC socket closes with it.
                    VmTestKit.Libvirt(Server, c =>
                    {
                        using var domain = c.LookupDomainByUuid(vm)!;
                        domain.Destroy();
                        return true;
                    });
                    vnc.DropAll();
                    break;
            }

            var (status, description) = await ConsoleKit.ReadCloseAsync(socket);
            Assert.Equal(WebSocketCloseStatus.NormalClosure, status);
            Assert.Equal(reason, description);
            await ConsoleKit.WaitForAsync(async () => await Count($"SELECT count(*) FROM console_sessions WHERE vm_id = '{vm}' AND end_reason = '{reason}'") == 1,
                TimeSpan.FromSeconds(10), $"the session to end as {reason} after {how}");
            Assert.False(IsRelayed(session));
        }
    }

    [Fact]
    public async Task Disabling_the_user_ends_their_sessions_and_refuses_their_unused_tickets()
    {
        await using var vnc = new FakeVncServer();
        var owner = await OwnerAsync("to-disable");
        var vm = await ConsoleKit.CreateWiredVmAsync(Server, owner.Client, owner.Image, "disabled", vnc.Port);
        var (_, url) = await ConsoleKit.TicketAsync(owner.Client, vm);
        var (spare, _) = await ConsoleKit.TicketAsync(owner.Client, vm);
        using var socket = await ConsoleKit.OpenAsync(url);
        await ConsoleKit.ReadExactAsync(socket, 12);
        var session = (await ConsoleKit.SessionAsync(owner.Client, vm)).GetProperty("id").GetGuid();
        using var admin = Server.Client(await Server.AdminTokenAsync());

        var patch = await admin.PatchAsync($"/api/admin/users/{owner.Id}", JsonContent(new { disabled = true }));
        Assert.Equal(HttpStatusCode.OK, patch.StatusCode);

        var (status, description) = await ConsoleKit.ReadCloseAsync(socket);
        Assert.Equal(WebSocketCloseStatus.PolicyViolation, status);
        Assert.Equal("user_disabled", description);
        await ConsoleKit.WaitForAsync(async () => await Count($"SELECT count(*) FROM console_sessions WHERE vm_id = '{vm}' AND end_reason = 'user_disabled'") == 1,
            TimeSpan.FromSeconds(10), "the session to end as user_disabled");
        await AssertRefusedAsync(await ConsoleKit.RefusedUpgradeAsync(Server, vm, spare), TicketRejections.NotAllowed);
        Assert.False(IsRelayed(session));
    }

    [Fact]
    public async Task Admins_list_and_terminate_sessions_while_users_see_only_their_own()
    {
        await using var vnc = new FakeVncServer();
        var owner = await OwnerAsync("listed-owner");
        var (_, otherToken) = await Server.CreateUserAsync("listed-other");
        using var other = Server.Client(otherToken);
        using var admin = Server.Client(await Server.AdminTokenAsync());
        var vm = await ConsoleKit.CreateWiredVmAsync(Server, owner.Client, owner.Image, "listed", vnc.Port);
        var (_, url) = await ConsoleKit.TicketAsync(owner.Client, vm);
        using var socket = await ConsoleKit.OpenAsync(url);
        await ConsoleKit.ReadExactAsync(socket, 12);

        var active = await ProblemAssert.Json(await admin.GetAsync($"/api/console/sessions?active=true&user_id={owner.Id}"));
        var session = Assert.Single(active.GetProperty("items").EnumerateArray());
        var sid = session.GetProperty("id").GetGuid();
        Assert.Equal(vm, session.GetProperty("vm_id").GetGuid());
        Assert.Equal(0, (await ProblemAssert.Json(await other.GetAsync($"/api/console/sessions?user_id={owner.Id}"))).GetProperty("total").GetInt32());
        Assert.Equal(sid, (await ConsoleKit.SessionAsync(owner.Client, vm)).GetProperty("id").GetGuid());
        // Another user's session is answered as one that does not exist.
        await ProblemAssert.IsProblem(await other.DeleteAsync($"/api/console/sessions/{sid}"), HttpStatusCode.NotFound, Problems.NotFound);
        await ProblemAssert.IsProblem(await admin.DeleteAsync($"/api/console/sessions/{Guid.NewGuid()}"), HttpStatusCode.NotFound, Problems.NotFound);
        await ProblemAssert.IsProblem(await admin.GetAsync("/api/console/sessions?page_size=0"), HttpStatusCode.BadRequest, Problems.Validation);

        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync($"/api/console/sessions/{sid}")).StatusCode);

        // 204 comes after the close: the record is already written.
        Assert.Equal(1, await Count($"SELECT count(*) FROM console_sessions WHERE id = '{sid}' AND end_reason = 'admin_terminated'"));
        var (status, description) = await ConsoleKit.ReadCloseAsync(socket);
        Assert.Equal(WebSocketCloseStatus.PolicyViolation, status);
        Assert.Equal("admin_terminated", description);
        Assert.False(IsRelayed(sid));
        Assert.Equal(1, await Count($"SELECT count(*) FROM audit_logs WHERE action = 'console.session.terminate' AND result = 'success' AND target_id = '{sid}'"));
        await ProblemAssert.IsProblem(await admin.DeleteAsync($"/api/console/sessions/{sid}"), HttpStatusCode.Conflict, Problems.Conflict);
        var ended = await ProblemAssert.Json(await admin.GetAsync($"/api/console/sessions?active=false&vm_id={vm}"));
        Assert.Equal("admin_terminated", Assert.Single(ended.GetProperty("items").EnumerateArray()).GetProperty("end_reason").GetString());
    }

    [Fact]
    public async Task A_user_ends_their_own_session_as_user_terminated_and_the_client_is_told_not_to_reconnect()
    {
        await using var vnc = new FakeVncServer();
        var owner = await OwnerAsync("self-ender");
        var vm = await ConsoleKit.CreateWiredVmAsync(Server, owner.Client, owner.Image, "self-ended", vnc.Port);
        var (_, url) = await ConsoleKit.TicketAsync(owner.Client, vm);
        using var socket = await ConsoleKit.OpenAsync(url);
        await ConsoleKit.ReadExactAsync(socket, 12);
        var sid = (await ConsoleKit.SessionAsync(owner.Client, vm)).GetProperty("id").GetGuid();

        Assert.Equal(HttpStatusCode.NoContent, (await owner.Client.DeleteAsync($"/api/console/sessions/{sid}")).StatusCode);

        var (status, description) = await ConsoleKit.ReadCloseAsync(socket);
        Assert.Equal(WebSocketCloseStatus.PolicyViolation, status);
        Assert.Equal("user_terminated", description);
        Assert.Equal(1, await Count($"SELECT count(*) FROM console_sessions WHERE id = '{sid}' AND end_reason = 'user_terminated'"));
        Assert.Equal(1, await Count(
            $"SELECT count(*) FROM audit_logs WHERE action = 'console.session.terminate' AND result = 'success' AND target_id = '{sid}' AND user_id = '{owner.Id}' AND details->>'reason' = 'user_terminated'"));
        Assert.False(IsRelayed(sid));
    }

    [Fact]
    public async Task A_client_that_stops_reading_stalls_the_vnc_side_instead_of_growing_server_buffers()
    {
        await using var vnc = new FakeVncServer(flood: true);
        var owner = await OwnerAsync("slow-reader");
        var vm = await ConsoleKit.CreateWiredVmAsync(Server, owner.Client, owner.Image, "flooded", vnc.Port);
        var (_, url) = await ConsoleKit.TicketAsync(owner.Client, vm);

        using var socket = await ConsoleKit.OpenAsync(url);
        // The client reads nothing. Once the socket buffers on the way are full, the flood must stop.
        await ConsoleKit.WaitForAsync(() => Task.FromResult(vnc.BytesSent > 0), TimeSpan.FromSeconds(10), "the flood to start");
        long previous;
        var current = vnc.BytesSent;
        do
        {
            previous = current;
            await Task.Delay(1500);
            current = vnc.BytesSent;
        }
        while (current != previous && current < 256L * 1024 * 1024);

        // Kernel socket buffers on loopback hold a few MiB per socket; an unbounded relay would read
        // the flood on into its own memory, so the VNC side would never stall. What the stand-in got
        // out is the relay's own measure: the process's managed heap is shared with parallel tests.
        Assert.True(current < 64L * 1024 * 1024, $"the stand-in VNC server got {current} bytes out to a client that reads nothing");
        await Task.Delay(1500);
        Assert.Equal(current, vnc.BytesSent);
        output.WriteLine($"stalled after {current} bytes from the VNC side");

        socket.Abort();
        await ConsoleKit.WaitForAsync(async () => await Count($"SELECT count(*) FROM console_sessions WHERE vm_id = '{vm}' AND end_reason = 'client_closed'") == 1,
            TimeSpan.FromSeconds(15), "the session to end");
    }

    private static StringContent JsonContent(object body) =>
        new(System.Text.Json.JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");

    private static async Task AssertRefusedAsync(HttpResponseMessage response, string reason)
    {
        var problem = await ProblemAssert.IsProblem(response, HttpStatusCode.Unauthorized, ConsoleProblems.TicketRejected);
        Assert.Equal(reason, problem.GetProperty("reason").GetString());
    }
}
