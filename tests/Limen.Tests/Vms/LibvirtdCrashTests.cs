using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Limen.Features.Health;
using Limen.Features.Hosts;
using Limen.Tests.Infrastructure;
using Limen.Tests.RemoteConsole;
using Limen.TestSupport;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Limen.Tests.Vms;

/// <summary>
/// libvirtd crashing (SIGKILL) again and again under a running server that has lifecycle-event
/// subscriptions and an open browser console on a real guest: the server must stay up, and
/// recover fully each time libvirtd is back.
/// </summary>
[Collection(QemuSystemCollection.Name)]
public sealed class LibvirtdCrashTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private const int Rounds = 10;
    private const string Banner = "LIMEN-GUEST READY";
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Ten_libvirtd_crashes_in_a_row_leave_the_server_up_and_each_time_health_actions_events_and_the_console_recover()
    {
        var logs = new CollectingLoggerProvider();
        await using var server = await LimenTestServer.StartAsync(new Dictionary<string, string?>
        {
            ["Limen:Hypervisor:Uri"] = LibvirtDaemon.Uri,
            // No sweep during the test: a state changed behind Limen's back can only reach the
            // database through a lifecycle event.
            ["Limen:Hypervisor:ReconcileIntervalSeconds"] = "3600",
            ["Logging:LogLevel:Limen.Features.Hosts.Hypervisor"] = "Information",
        }, services => services.AddLogging(logging => logging.AddProvider(logs)));
        var lifetime = server.Services.GetRequiredService<IHostApplicationLifetime>();
        var image = await VmTestKit.RegisterTinyGuestAsync(server);
        var (_, token) = await server.CreateUserAsync("crash-owner");
        using var owner = server.Client(token);
        using var anonymous = server.Client();
        var id = (await VmTestKit.CreateVmAsync(owner, image, "crash-survivor", start: true, memoryMb: 256)).GetProperty("id").GetGuid();
        var domain = LimenTestServer.DomainPrefix + id;
        System.Net.WebSockets.ClientWebSocket? console = null;
        try
        {
            var serial = server.Services.GetRequiredService<HostRegistry>().Local.SerialLogPath(id);
            await Eventually.WaitAsync(() => Task.FromResult(File.Exists(serial) && File.ReadAllText(serial).Contains(Banner, StringComparison.Ordinal)),
                TimeSpan.FromSeconds(90), "the guest's boot banner");
            var (_, url) = await ConsoleKit.TicketAsync(owner, id);
            console = await ConsoleKit.OpenAsync(url, origin: $"http://{server.BaseAddress.Authority}");
            var display = await ConsoleKit.RfbHandshakeAsync(console);
            var sessionId = (await ConsoleKit.SessionAsync(owner, id)).GetProperty("id").GetGuid();

            for (var round = 1; round <= Rounds; round++)
            {
                var clock = Stopwatch.StartNew();
                await LibvirtDaemon.KillAsync(Deadline);
                await Eventually.WaitAsync(async () => await HealthAsync(anonymous) is (HttpStatusCode.ServiceUnavailable, var body)
                    && body.GetProperty("libvirt").GetString() == "disconnected", Deadline, $"round {round}: health to report libvirt down");
                Assert.Equal(HttpStatusCode.OK, (await owner.GetAsync($"/api/vms/{id}")).StatusCode); // the database still answers

                await LibvirtDaemon.EnsureRunningAsync(Deadline);
                await Eventually.WaitAsync(async () => (await HealthAsync(anonymous)).Status == HttpStatusCode.OK, Deadline,
                    $"round {round}: health to recover", () => string.Join('\n', logs.Lines.TakeLast(20)));
                var recovered = clock.Elapsed;

                // Still the same server: nothing asked the host to stop.
                Assert.False(lifetime.ApplicationStopping.IsCancellationRequested, $"round {round}: the host is stopping");
                var (_, health) = await HealthAsync(anonymous);
                Assert.Equal("ok", health.GetProperty("status").GetString());
                Assert.DoesNotContain(health.GetProperty("loops").EnumerateObject(), l => l.Value.GetProperty("status").GetString() == LoopStatuses.Failing);

                // A VM action goes through libvirt again.
                await ActAsync(owner, id, "suspend", "paused", round);
                await ActAsync(owner, id, "resume", "running", round);

                // Lifecycle events arrive again: changes made behind Limen's back reach the row with no sweep.
                await ExternalProcess.RunAsync("virsh", "-c", LibvirtDaemon.Uri, "suspend", domain);
                await WaitForStateAsync(owner, id, "paused", $"round {round}: the suspend done with virsh");
                await ExternalProcess.RunAsync("virsh", "-c", LibvirtDaemon.Uri, "resume", domain);
                await WaitForStateAsync(owner, id, "running", $"round {round}: the resume done with virsh");

                // The console opened before the first crash still relays the guest's screen (QEMU may
                // send more than the corner asked for: everything that changed since the last update).
                var (pixels, _) = await ConsoleKit.RequestFramebufferAsync(console, display, 16, 16);
                Assert.InRange(pixels, 16 * 16, (long)display.Width * display.Height);
                Assert.Equal(1, await server.Database.ScalarAsync($"SELECT count(*) FROM console_sessions WHERE id = '{sessionId}' AND ended_at IS NULL"));
                output.WriteLine($"round {round}: recovered {recovered.TotalSeconds:F1} s after the kill, round done in {clock.Elapsed.TotalSeconds:F1} s");
            }

            Assert.Contains(HttpStatusCode.ServiceUnavailable, healthAnswers);
            Assert.DoesNotContain(logs.Lines, l => l.Contains("BackgroundService failed", StringComparison.Ordinal));
            Assert.DoesNotContain(logs.Lines, l => l.Contains("StopHost", StringComparison.Ordinal));
            // Each crash left a connection with a live subscription whose release could not reach the daemon.
            Assert.Equal(Rounds, logs.Lines.Count(l => l.Contains("Released the libvirt connection", StringComparison.Ordinal)));
            Assert.Equal(0, await server.Database.ScalarAsync(
                $"SELECT count(*) FROM audit_logs WHERE target_id = '{id}' AND action = 'vm.missing'"));
        }
        finally
        {
            await LibvirtDaemon.EnsureRunningAsync(Deadline);
            await Eventually.WaitAsync(() => Task.FromResult(server.Services.GetRequiredService<HostRegistry>().Local.Hypervisor.Probe()), Deadline, "libvirt");
            console?.Abort();
            console?.Dispose();
            await owner.DeleteAsync($"/api/vms/{id}");
        }
    }

    // Every answer health gave during the test: 200 or 503, never a 500 from a release that threw.
    private readonly System.Collections.Concurrent.ConcurrentQueue<HttpStatusCode> healthAnswers = new();

    private async Task<(HttpStatusCode Status, JsonElement Body)> HealthAsync(HttpClient client)
    {
        using var response = await client.GetAsync("/api/health");
        healthAnswers.Enqueue(response.StatusCode);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode is HttpStatusCode.OK or HttpStatusCode.ServiceUnavailable, $"health answered {(int)response.StatusCode}: {text}");
        return (response.StatusCode, JsonDocument.Parse(text).RootElement.Clone());
    }

    private static async Task ActAsync(HttpClient client, Guid id, string action, string expectedState, int round)
    {
        var response = await client.PostAsync($"/api/vms/{id}/actions/{action}", null);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"round {round}, {action}: {body}");
        Assert.Equal(expectedState, JsonDocument.Parse(body).RootElement.GetProperty("state").GetString());
    }

    private static Task WaitForStateAsync(HttpClient client, Guid id, string state, string what) =>
        Eventually.WaitAsync(async () =>
            (await ProblemAssert.Json(await client.GetAsync($"/api/vms/{id}"))).GetProperty("state").GetString() == state,
            TimeSpan.FromSeconds(20), what);
}
