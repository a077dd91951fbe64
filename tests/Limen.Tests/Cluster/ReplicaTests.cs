using System.Diagnostics;
using System.Net;
using System.Net.WebSockets;
using System.Text.Json;
using Limen.Tests.Infrastructure;
using Limen.Tests.RemoteConsole;
using Xunit.Abstractions;

namespace Limen.Tests.Cluster;

/// <summary>
/// Two real `limen serve` processes on one database and one libvirt (qemu:///system, a shared
/// domain prefix and disk folder), as two replicas behind a load balancer.
/// </summary>
[Collection(QemuSystemCollection.Name)]
public sealed class ReplicaTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Takeover = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task One_server_leads_and_when_it_is_killed_the_other_takes_over_and_reconciles_within_15_s()
    {
        await using var stack = await ServeStack.CreateAsync();
        await stack.StartAsync(serverId: "srv-a");
        var b = await stack.StartReplicaAsync("srv-b");
        using var a = stack.Client();
        using var bClient = b.Client();

        var healthA = await HealthAsync(a);
        var healthB = await HealthAsync(bClient);
        Assert.Equal("srv-a", healthA.GetProperty("server_id").GetString());
        Assert.Equal("srv-b", healthB.GetProperty("server_id").GetString());
        Assert.True(healthA.GetProperty("leader").GetBoolean(), healthA.ToString());
        Assert.False(healthB.GetProperty("leader").GetBoolean(), healthB.ToString());
        Assert.Equal("ok", LoopStatus(healthA, "vm_reconciler"));
        // The follower's reconciler waits without failing: health stays 200.
        Assert.Equal("standby", LoopStatus(healthB, "vm_reconciler"));
        Assert.Equal("ok", healthB.GetProperty("status").GetString());
        Assert.Equal(1, ProblemAssert.Sample(await MetricsAsync(bClient), "limen_server_info", "server_id=\"srv-b\""));
        Assert.Equal(0, ProblemAssert.Sample(await MetricsAsync(bClient), "limen_leader", "server_id=\"srv-b\""));

        var image = await stack.RegisterBlankImageAsync();
        using var owner = stack.Client(await stack.UserTokenAsync("replica-owner"));
        var vmId = (await VmTestKit.CreateVmAsync(owner, image, "survivor", start: true, memoryMb: 64)).GetProperty("id").GetGuid();
        Assert.Equal("running", await StateAsync(stack, vmId));

        // The leader dies without a word; then the domain is destroyed behind Limen's back.
        stack.Process!.Signal(9);
        Assert.True(await stack.Process.WaitForExitAsync(TimeSpan.FromSeconds(10)));
        var killed = Stopwatch.StartNew();
        ServeStack.Libvirt(c =>
        {
            using var domain = c.LookupDomainByUuid(vmId)!;
            domain.Destroy();
            return true;
        });

        await Eventually.WaitAsync(async () => (await HealthAsync(bClient)).GetProperty("leader").GetBoolean(), Takeover, "srv-b leading");
        var led = killed.Elapsed;
        await Eventually.WaitAsync(async () => await StateAsync(stack, vmId) == "stopped", Takeover - killed.Elapsed, "the survivor reconciling the destroyed VM");
        output.WriteLine($"srv-b led {led.TotalMilliseconds:0} ms after the SIGKILL; the VM row was stopped after {killed.ElapsedMilliseconds} ms");
        Assert.Contains(b.Process.Output, l => l.Contains($"VM {vmId} is now stopped", StringComparison.Ordinal));
        // The pass saves the row before it returns; health reports ok once the pass has returned.
        await Eventually.WaitAsync(async () => LoopStatus(await HealthAsync(bClient), "vm_reconciler") == "ok", Takeover - killed.Elapsed,
            "srv-b's reconciler reporting its first pass as leader");
        Assert.Equal(1, ProblemAssert.Sample(await MetricsAsync(bClient), "limen_leader", "server_id=\"srv-b\""));
    }

    [Fact]
    public async Task The_same_vm_changed_through_both_servers_at_once_is_changed_one_after_the_other()
    {
        await using var stack = await ServeStack.CreateAsync();
        await stack.StartAsync(serverId: "srv-a");
        var b = await stack.StartReplicaAsync("srv-b");
        var image = await stack.RegisterBlankImageAsync();
        var token = await stack.UserTokenAsync("race-owner");
        using var a = stack.Client(token);
        using var bClient = b.Client(token);

        for (var round = 0; round < 3; round++)
        {
            var id = (await VmTestKit.CreateVmAsync(a, image, $"twice-{round}", memoryMb: 64)).GetProperty("id").GetGuid();
            var deletes = await Task.WhenAll(a.DeleteAsync($"/api/vms/{id}"), bClient.DeleteAsync($"/api/vms/{id}"));
            var codes = deletes.Select(r => (int)r.StatusCode).Order().ToArray();
            // One delete does it; the other, serialized behind it, finds nothing left.
            Assert.True(codes is [204, 404], $"round {round}: {string.Join(", ", codes)}");
        }

        for (var round = 0; round < 3; round++)
        {
            var id = (await VmTestKit.CreateVmAsync(a, image, $"start-delete-{round}", memoryMb: 64)).GetProperty("id").GetGuid();
            var start = a.PostAsync($"/api/vms/{id}/actions/start", null);
            var delete = bClient.DeleteAsync($"/api/vms/{id}");
            await Task.WhenAll(start, delete);
            Assert.Equal(HttpStatusCode.NoContent, (await delete).StatusCode);
            // Started before the delete, or found gone after it: never half of each.
            var startCode = (int)(await start).StatusCode;
            Assert.True(startCode is 200 or 404, $"round {round}: start answered {startCode}: {await (await start).Content.ReadAsStringAsync()}");
        }

        await stack.AssertAgreementAsync("blank.qcow2");
        Assert.Equal(0, await stack.ScalarAsync("SELECT count(*) FROM vms"));
    }

    /// <summary>
    /// Needs the event listener (branch `events`) that calls <see cref="Limen.Features.Events.IEventConsumer"/>s:
    /// without it the relaying server never hears of the request and the terminate answers 202.
    /// </summary>
    [Fact]
    public async Task An_admin_terminate_through_one_server_ends_the_session_the_other_relays()
    {
        await using var stack = await ServeStack.CreateAsync();
        await stack.StartAsync(serverId: "srv-a");
        var b = await stack.StartReplicaAsync("srv-b");
        var image = await stack.RegisterBlankImageAsync();
        using var owner = stack.Client(await stack.UserTokenAsync("console-owner"));
        var vmId = (await VmTestKit.CreateVmAsync(owner, image, "watched", start: true, memoryMb: 64)).GetProperty("id").GetGuid();

        var (_, wsUrl) = await ConsoleKit.TicketAsync(owner, vmId);
        Assert.Equal(stack.BaseAddress!.Port, wsUrl.Port);
        using var socket = await ConsoleKit.OpenAsync(wsUrl);
        Assert.Equal("RFB ", System.Text.Encoding.ASCII.GetString(await ConsoleKit.ReadExactAsync(socket, 4)));
        var sessionId = await stack.QueryAsync($"SELECT id FROM console_sessions WHERE vm_id = '{vmId}' AND server_id = 'srv-a' AND ended_at IS NULL", r => r.GetGuid(0));
        Assert.Single(sessionId);

        using var admin = b.Client(await stack.AdminTokenAsync());
        // Read like a browser does, so the close handshake can complete while the DELETE waits for it.
        var closing = ConsoleKit.ReadCloseAsync(socket, TimeSpan.FromSeconds(30));
        var terminated = Stopwatch.StartNew();
        var response = await admin.DeleteAsync($"/api/console/sessions/{sessionId[0]}");
        output.WriteLine($"terminate through srv-b answered {(int)response.StatusCode} after {terminated.ElapsedMilliseconds} ms");
        Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
        var (status, reason) = await closing;
        Assert.Equal((WebSocketCloseStatus.PolicyViolation, "admin_terminated"), (status, reason));
        var row = await stack.QueryAsync($"SELECT end_reason, ended_at IS NOT NULL FROM console_sessions WHERE id = '{sessionId[0]}'", r => (r.GetString(0), r.GetBoolean(1)));
        Assert.Equal(("admin_terminated", true), row.Single());
        Assert.Equal(1, await stack.ScalarAsync(
            $"SELECT count(*) FROM events WHERE type = 'console.session.closed' AND server_id = 'srv-a' AND data->>'session_id' = '{sessionId[0]}'"));
    }

    private static async Task<JsonElement> HealthAsync(HttpClient client) =>
        JsonDocument.Parse(await client.GetStringAsync("/api/health")).RootElement;

    private static string? LoopStatus(JsonElement health, string loop) =>
        health.GetProperty("loops").GetProperty(loop).GetProperty("status").GetString();

    private static Task<string> MetricsAsync(HttpClient client) => client.GetStringAsync("/api/metrics");

    private static async Task<string> StateAsync(ServeStack stack, Guid vmId) =>
        (await stack.QueryAsync($"SELECT state FROM vms WHERE id = '{vmId}'", r => r.GetString(0))).Single();
}
