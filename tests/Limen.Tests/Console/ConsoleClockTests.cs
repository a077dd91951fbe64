using System.Net;
using System.Net.WebSockets;
using Limen.Features.RemoteConsole;
using Limen.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace Limen.Tests.RemoteConsole;

/// <summary>
/// Ticket expiry, the idle timeout and the maximum duration, on a server whose clock the test moves
/// forward: the sweep runs every second of real time and judges by the server's clock, so
/// "16 minutes idle" takes a second to test and is the same code path as in production.
/// Each test has its own server: once the clock has jumped, new access tokens would not be valid yet
/// by the real time that JWT validation uses.
/// </summary>
public sealed class ConsoleClockTests : IAsyncLifetime
{
    private readonly ShiftableClock clock = new();
    private LimenTestServer? server;

    private LimenTestServer Server => server ?? throw new InvalidOperationException("not started");

    public async Task InitializeAsync() => server = await LimenTestServer.StartAsync(
        new Dictionary<string, string?> { ["Limen:Console:SweepSeconds"] = "1" },
        services => services.AddSingleton<TimeProvider>(clock));

    public async Task DisposeAsync()
    {
        if (server is not null)
        {
            await server.DisposeAsync();
        }
    }

    private async Task<(HttpClient Client, Guid Vm, FakeVncServer Vnc)> VmAsync(string username)
    {
        var vnc = new FakeVncServer();
        var (_, token) = await Server.CreateUserAsync(username);
        var client = Server.Client(token);
        var image = await VmTestKit.RegisterBlankImageAsync(Server, "img-" + username);
        return (client, await ConsoleKit.CreateWiredVmAsync(Server, client, image, "clocked", vnc.Port), vnc);
    }

    private Task<long> Count(string sql) => Server.Database.ScalarAsync(sql);

    [Fact]
    public async Task A_ticket_used_after_its_30_seconds_is_refused_before_vnc_and_audited()
    {
        var (client, vm, vnc) = await VmAsync("expiry-owner");
        await using var _ = vnc;
        var (ticket, _) = await ConsoleKit.TicketAsync(client, vm);
        var (fresh, freshUrl) = await ConsoleKit.TicketAsync(client, vm);

        clock.Advance(TimeSpan.FromSeconds(31));

        var refused = await ConsoleKit.RefusedUpgradeAsync(Server, vm, ticket);
        var problem = await ProblemAssert.IsProblem(refused, HttpStatusCode.Unauthorized, ConsoleProblems.TicketRejected);
        Assert.Equal("expired", problem.GetProperty("reason").GetString());
        Assert.Equal(0, vnc.Connections);
        Assert.True(await Count($"SELECT count(*) FROM audit_logs WHERE action = 'console.connect' AND error_code = 'expired' AND target_id = '{vm}'") >= 1);
        Assert.True(ProblemAssert.Sample(await Server.MetricsAsync(), "console_ticket_rejected_total", "reason=\"expired\"") >= 1);
        Assert.NotEqual(ticket, fresh);
        await Assert.ThrowsAsync<WebSocketException>(() => ConsoleKit.OpenAsync(freshUrl));
    }

    [Fact]
    public async Task A_session_ends_after_15_idle_minutes_but_input_from_the_browser_keeps_it_open()
    {
        var (client, vm, vnc) = await VmAsync("idle-owner");
        await using var _ = vnc;
        var (_, url) = await ConsoleKit.TicketAsync(client, vm);
        using var socket = await ConsoleKit.OpenAsync(url);
        await ConsoleKit.ReadExactAsync(socket, 12);

        clock.Advance(TimeSpan.FromMinutes(14));
        await socket.SendAsync(new byte[] { 1, 2, 3 }, WebSocketMessageType.Binary, true, CancellationToken.None);
        await ConsoleKit.ReadExactAsync(socket, 3);
        clock.Advance(TimeSpan.FromMinutes(14));
        await Task.Delay(2500);     // two sweeps: 28 minutes in, 14 since the input — still open
        Assert.Equal(1, await Count($"SELECT count(*) FROM console_sessions WHERE vm_id = '{vm}' AND ended_at IS NULL"));

        clock.Advance(TimeSpan.FromMinutes(2));

        var (status, reason) = await ConsoleKit.ReadCloseAsync(socket, TimeSpan.FromSeconds(10));
        Assert.Equal(WebSocketCloseStatus.PolicyViolation, status);
        Assert.Equal("idle_timeout", reason);
        await ConsoleKit.WaitForAsync(async () => await Count($"SELECT count(*) FROM console_sessions WHERE vm_id = '{vm}' AND end_reason = 'idle_timeout'") == 1,
            TimeSpan.FromSeconds(10), "the idle_timeout record");
        Assert.Equal(0, await ConsoleKit.GaugeAsync(Server));
    }

    [Fact]
    public async Task A_busy_session_ends_at_the_4_hour_maximum()
    {
        var (client, vm, vnc) = await VmAsync("busy-owner");
        await using var _ = vnc;
        var (_, url) = await ConsoleKit.TicketAsync(client, vm);
        using var socket = await ConsoleKit.OpenAsync(url);
        await ConsoleKit.ReadExactAsync(socket, 12);

        // Input every 10 minutes, so the idle limit never applies.
        for (var minutes = 10; minutes < 240; minutes += 10)
        {
            clock.Advance(TimeSpan.FromMinutes(10));
            await socket.SendAsync(new byte[] { 7 }, WebSocketMessageType.Binary, true, CancellationToken.None);
            await ConsoleKit.ReadExactAsync(socket, 1);
        }

        await Task.Delay(1500);
        Assert.Equal(1, await Count($"SELECT count(*) FROM console_sessions WHERE vm_id = '{vm}' AND ended_at IS NULL"));
        clock.Advance(TimeSpan.FromMinutes(10));
        await socket.SendAsync(new byte[] { 7 }, WebSocketMessageType.Binary, true, CancellationToken.None);

        var (status, reason) = await ConsoleKit.ReadCloseAsync(socket, TimeSpan.FromSeconds(10));
        Assert.Equal(WebSocketCloseStatus.PolicyViolation, status);
        Assert.Equal("max_duration", reason);
        await ConsoleKit.WaitForAsync(async () => await Count($"SELECT count(*) FROM console_sessions WHERE vm_id = '{vm}' AND end_reason = 'max_duration'") == 1,
            TimeSpan.FromSeconds(10), "the max_duration record");
        Assert.Equal(0, await ConsoleKit.GaugeAsync(Server));
    }
}

/// <summary>What a restart does to sessions: a stopping server ends its own, a starting one closes what a crash left open.</summary>
public sealed class ConsoleRestartTests
{
    [Fact]
    public async Task A_stopping_server_ends_its_sessions_and_a_starting_one_closes_those_a_crash_left_open()
    {
        await using var vnc = new FakeVncServer();
        await using var first = await LimenTestServer.StartAsync();
        var (userId, token) = await first.CreateUserAsync("restart-owner");
        using var client = first.Client(token);
        var image = await VmTestKit.RegisterBlankImageAsync(first);
        var vm = await ConsoleKit.CreateWiredVmAsync(first, client, image, "restarted", vnc.Port);
        var (_, url) = await ConsoleKit.TicketAsync(client, vm);
        using var socket = await ConsoleKit.OpenAsync(url);
        await ConsoleKit.ReadExactAsync(socket, 12);

        // The server is told to stop: its live session learns why and is recorded before it goes.
        first.Services.GetRequiredService<Microsoft.Extensions.Hosting.IHostApplicationLifetime>().StopApplication();
        var (status, reason) = await ConsoleKit.ReadCloseAsync(socket, TimeSpan.FromSeconds(15));
        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, status);
        Assert.Equal("server_restart", reason);
        await ConsoleKit.WaitForAsync(async () => await first.Database.ScalarAsync(
                $"SELECT count(*) FROM console_sessions WHERE vm_id = '{vm}' AND end_reason = 'server_restart'") == 1,
            TimeSpan.FromSeconds(10), "the stopping server's record");
        Assert.Equal(0, await ConsoleKit.GaugeAsync(first));

        // What a crash leaves instead: a session row nobody will close. The next start closes it.
        var orphan = Guid.NewGuid();
        await first.Database.ScalarAsync(
            $"INSERT INTO console_sessions (id, user_id, vm_id, started_at, last_activity_at) VALUES ('{orphan}', '{userId}', '{vm}', now(), now()) RETURNING 1");
        await using var second = await LimenTestServer.StartAsync(database: first.Database);

        Assert.Equal(0, await second.Database.ScalarAsync("SELECT count(*) FROM console_sessions WHERE ended_at IS NULL"));
        Assert.Equal(1, await second.Database.ScalarAsync($"SELECT count(*) FROM console_sessions WHERE id = '{orphan}' AND end_reason = 'server_restart'"));
        Assert.Equal(1, await second.Database.ScalarAsync(
            $"SELECT count(*) FROM audit_logs WHERE action = 'console.session.end' AND details->>'session_id' = '{orphan}' AND details->>'reason' = 'server_restart'"));
    }
}
