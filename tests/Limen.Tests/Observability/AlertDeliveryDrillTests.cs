using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Limen.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Limen.Tests.Observability;

/// <summary>
/// The alert drill: real Prometheus and Alertmanager, the repo's configs with only the overlay of
/// deploy/README.md, scraping a real Limen server and a real agent, delivering to a real Limen
/// webhook. Two Limen servers play two roles: "monitored" is scraped and made sick and finally
/// stopped; "receiver" holds the webhook, so LimenDown itself can still arrive somewhere. In
/// production both are one server (and LimenDown should also page a human another way).
/// </summary>
public sealed class AlertDeliveryDrillTests
{
    private const string Token = "drill-webhook-token";
    private const string ScrapeToken = "drill-scrape-token";
    private const string Host = "127.0.0.1";   // `instance` after the relabelling: host without port
    private const int TmpfsMiB = 16;
    private const int FillMiB = 15;             // 94 % > the shipped 85 % threshold of HighHostDiskUsage
    private static readonly TimeSpan Step = TimeSpan.FromSeconds(40);

    [Fact]
    public async Task Alerts_fire_resolve_and_are_inhibited_end_to_end_and_alerts_test_delivers()
    {
        var artifacts = RepoPaths.Artifacts("alert-drill");
        foreach (var old in Directory.GetFiles(artifacts))
        {
            File.Delete(old);
        }

        var timeline = new StringBuilder();
        var clock = Stopwatch.StartNew();
        void Note(string line) => timeline.AppendLine($"{clock.Elapsed.TotalSeconds,6:0.0}s  {line}");

        var payloads = new ConcurrentQueue<(DateTimeOffset Time, string Body)>();
        await using var disk = await TmpfsMount.MountAsync(TmpfsMiB);
        var scrapeTokenDir = Directory.CreateTempSubdirectory("limen-test-scrape-token-");
        var scrapeTokenFile = Path.Combine(scrapeTokenDir.FullName, "token");
        await File.WriteAllTextAsync(scrapeTokenFile, ScrapeToken);
        await using var receiver = await LimenTestServer.StartAsync(
            new Dictionary<string, string?> { ["Limen:Alerts:WebhookToken"] = Token },
            services => services.AddSingleton<IStartupFilter>(new WebhookRecorder(payloads)));
        var monitoredRunning = true;
        var monitored = await LimenTestServer.StartAsync(new Dictionary<string, string?>
        {
            ["Limen:Metrics:HostSampleSeconds"] = "1",
            ["Limen:Metrics:DiskPath"] = disk.Path,
            ["Limen:Metrics:ScrapeTokenFile"] = scrapeTokenFile,
        });
        MonitoringStack? stack = null;
        try
        {
            await using var agent = await AgentTests.StartAgentAsync(disk.Path);
            // limen_database_up is set by the health probe; probe once so DatabaseDown does not join in.
            using (var probe = monitored.Client())
            {
                (await probe.GetAsync("/api/health")).EnsureSuccessStatusCode();
            }

            stack = await MonitoringStack.StartAsync(monitored.BaseAddress.Authority, agent.Address.Authority,
                new Uri(receiver.BaseAddress, "/api/alerts/webhook"), Token, ScrapeToken,
                // 0.05 failures/s over the 5m window = 15 failures: reachable in seconds, far above an idle server's 0.
                new Dictionary<string, string> { ["auth_failure_rate"] = "0.05" });
            Note($"Prometheus {stack.Prometheus}, Alertmanager {stack.Alertmanager} ready; monitored {monitored.BaseAddress}, agent {agent.Address}, receiver {receiver.BaseAddress}");
            using var admin = receiver.Client(await receiver.AdminTokenAsync());
            string Diagnostics() => timeline + "\n--- monitoring logs ---\n" + stack.Logs;

            // 0. Prometheus scrapes the monitored server with the shipped credentials_file; nobody else may.
            using (var anonymous = monitored.Client())
            {
                Assert.Equal(401, (int)(await anonymous.GetAsync("/api/metrics")).StatusCode);
            }

            using (var prometheusApi = new HttpClient { BaseAddress = stack.Prometheus })
            {
                await Eventually.WaitAsync(async () =>
                {
                    var targets = await prometheusApi.GetFromJsonAsync<JsonElement>("api/v1/targets?state=active");
                    return targets.GetProperty("data").GetProperty("activeTargets").EnumerateArray()
                        .Any(t => t.GetProperty("labels").GetProperty("job").GetString() == "limen" && t.GetProperty("health").GetString() == "up");
                }, Step, "Prometheus to scrape limen serve with the token (job limen up)", Diagnostics);
            }

            Note("Prometheus scrapes /api/metrics with its credentials_file; an anonymous scrape gets 401");

            // 1. `limen alerts test`, the built binary, against the drill's Alertmanager and the receiver's database.
            await using (var command = ExternalProcess.Start("dotnet", LimenBinary(), "alerts", "test",
                "--alertmanager", stack.Alertmanager.ToString(), "--timeout", "30", "--database-url", receiver.Database.ConnectionString))
            {
                var exit = await command.WaitForExitAsync(TimeSpan.FromSeconds(60));
                Assert.True(exit == 0, $"limen alerts test exited {exit}:\n{command.Output}\n{Diagnostics()}");
                Assert.Contains("OK: test alert", command.Output, StringComparison.Ordinal);
                Note("limen alerts test: " + command.Output.Split('\n').Single(l => l.StartsWith("OK:", StringComparison.Ordinal)));
            }

            // 2. Causes: failed logins on the monitored server, a nearly full disk under both the server and the agent.
            var causeStarted = DateTimeOffset.UtcNow;
            await disk.FillAsync("ballast", FillMiB);
            using (var anonymous = monitored.Client())
            {
                for (var i = 0; i < 40; i++)
                {
                    var login = await anonymous.PostAsJsonAsync("/api/auth/login", new { username = "admin", password = "wrong password " + i });
                    Assert.Equal(401, (int)login.StatusCode);
                    await Task.Delay(50);
                }
            }

            Note("40 failed logins done, disk filled to 15/16 MiB");
            var auth = await WaitForAlertAsync(admin, "HighAuthFailureRate", "firing", Diagnostics);
            var diskFiring = await WaitForAlertAsync(admin, "HighHostDiskUsage", "firing", Diagnostics);
            foreach (var alert in new[] { auth, diskFiring })
            {
                Assert.Equal("warning", alert.GetProperty("receiver").GetString());
                Assert.Equal(Host, alert.GetProperty("labels").GetProperty("instance").GetString());
                Assert.EndsWith($"docs/runbooks/{alert.GetProperty("alertname").GetString()}.md",
                    alert.GetProperty("annotations").GetProperty("runbook_url").GetString(), StringComparison.Ordinal);
                Note($"{alert.GetProperty("alertname").GetString()} firing arrived at receiver 'warning' " +
                    $"{(alert.GetProperty("first_received_at").GetDateTimeOffset() - causeStarted).TotalSeconds:0.0} s after the cause began");
            }

            // 3. Stopping the cause: the disk alert's resolved notification updates the same row.
            var freed = DateTimeOffset.UtcNow;
            disk.Remove("ballast");
            var diskResolved = await WaitForAlertAsync(admin, "HighHostDiskUsage", "resolved", Diagnostics);
            Assert.Equal(diskFiring.GetProperty("id").GetInt64(), diskResolved.GetProperty("id").GetInt64());
            Assert.NotEqual(JsonValueKind.Null, diskResolved.GetProperty("ends_at").ValueKind);
            Note($"HighHostDiskUsage resolved arrived {(diskResolved.GetProperty("last_received_at").GetDateTimeOffset() - freed).TotalSeconds:0.0} s after the disk was freed (same row, count {diskResolved.GetProperty("count").GetInt32()})");

            // 4. The disk fills again (a new episode, a new row); then the monitored server goes down.
            await disk.FillAsync("ballast", FillMiB);
            var refiring = await WaitForAlertAsync(admin, "HighHostDiskUsage", "firing", Diagnostics);
            Assert.NotEqual(diskFiring.GetProperty("id").GetInt64(), refiring.GetProperty("id").GetInt64());
            Note("HighHostDiskUsage firing again (new episode, new row)");

            var stopped = DateTimeOffset.UtcNow;
            monitoredRunning = false;
            await monitored.DisposeAsync();
            var limenDown = await WaitForAlertAsync(admin, "LimenDown", "firing", Diagnostics);
            Assert.Equal("critical", limenDown.GetProperty("receiver").GetString());
            Assert.Equal(Host, limenDown.GetProperty("labels").GetProperty("instance").GetString());
            Note($"LimenDown arrived at receiver 'critical' {(limenDown.GetProperty("first_received_at").GetDateTimeOffset() - stopped).TotalSeconds:0.0} s after the monitored server stopped");

            // Alertmanager mutes the agent-fed disk alert of the same instance, naming LimenDown.
            using var alertmanager = new HttpClient { BaseAddress = stack.Alertmanager };
            JsonElement diskInAlertmanager = default;
            await Eventually.WaitAsync(async () =>
            {
                var listed = await alertmanager.GetFromJsonAsync<JsonElement>("api/v2/alerts?filter=alertname%3D%22HighHostDiskUsage%22");
                diskInAlertmanager = listed.EnumerateArray().FirstOrDefault();
                return diskInAlertmanager.ValueKind == JsonValueKind.Object
                    && diskInAlertmanager.GetProperty("status").GetProperty("state").GetString() == "suppressed";
            }, Step, "Alertmanager to show HighHostDiskUsage suppressed", Diagnostics);
            Assert.Contains(limenDown.GetProperty("fingerprint").GetString(),
                diskInAlertmanager.GetProperty("status").GetProperty("inhibitedBy").EnumerateArray().Select(f => f.GetString()));
            await File.WriteAllTextAsync(Path.Combine(artifacts, "alertmanager-alerts-during-LimenDown.json"),
                await alertmanager.GetStringAsync("api/v2/alerts"));

            // While muted, not even its resolution reaches the webhook: free the disk, wait until
            // Prometheus has resolved it, give Alertmanager several group intervals, and look.
            disk.Remove("ballast");
            using var prometheus = new HttpClient { BaseAddress = stack.Prometheus };
            await Eventually.WaitAsync(async () =>
            {
                var rules = await prometheus.GetFromJsonAsync<JsonElement>("api/v1/alerts");
                return !rules.GetProperty("data").GetProperty("alerts").EnumerateArray()
                    .Any(a => a.GetProperty("labels").GetProperty("alertname").GetString() == "HighHostDiskUsage");
            }, Step, "Prometheus to resolve HighHostDiskUsage", Diagnostics);
            await Task.Delay(TimeSpan.FromSeconds(4));
            var muted = await AlertAsync(admin, refiring.GetProperty("id").GetInt64());
            Assert.Equal("firing", muted.GetProperty("status").GetString());
            Assert.Equal(refiring.GetProperty("count").GetInt32(), muted.GetProperty("count").GetInt32());
            Note("HighHostDiskUsage resolved in Prometheus while LimenDown fires: no notification reached the webhook (inhibited)");

            await File.WriteAllTextAsync(Path.Combine(artifacts, "limen-alerts.json"), await admin.GetStringAsync("/api/alerts?page_size=200"));
        }
        finally
        {
            // Processes first: nothing below may leave Prometheus or Alertmanager running.
            try
            {
                if (stack is not null)
                {
                    await File.WriteAllTextAsync(Path.Combine(artifacts, "monitoring.log"), stack.Logs);
                    await stack.DisposeAsync();
                }
            }
            finally
            {
                if (monitoredRunning)
                {
                    await monitored.DisposeAsync();
                }

                var number = 0;
                foreach (var (time, body) in payloads)
                {
                    await File.WriteAllTextAsync(Path.Combine(artifacts, $"payload-{++number:000}.json"), body);
                    timeline.AppendLine($"payload-{number:000}.json received {time:O}");
                }

                await File.WriteAllTextAsync(Path.Combine(artifacts, "timeline.txt"), timeline.ToString());
                scrapeTokenDir.Delete(recursive: true);
            }
        }
    }

    /// <summary>limen.dll as src/Limen builds it, in the configuration these tests were built in.</summary>
    private static string LimenBinary()
    {
        var configuration = new DirectoryInfo(AppContext.BaseDirectory).Parent!.Name;   // bin/<configuration>/net10.0/
        var binary = Path.Combine(RepoPaths.Root, "src", "Limen", "bin", configuration, "net10.0", "limen.dll");
        Assert.True(File.Exists(binary), $"{binary} not built");
        return binary;
    }

    /// <summary>The newest stored alert with that name and status, once the receiver has it.</summary>
    private static async Task<JsonElement> WaitForAlertAsync(HttpClient admin, string alertname, string status, Func<string> diagnostics)
    {
        JsonElement found = default;
        await Eventually.WaitAsync(async () =>
        {
            var list = await admin.GetFromJsonAsync<JsonElement>($"/api/alerts?alertname={alertname}&status={status}");
            found = list.GetProperty("items").EnumerateArray().FirstOrDefault();
            return found.ValueKind == JsonValueKind.Object;
        }, Step, $"{alertname} {status} to arrive at the webhook", diagnostics);
        return found;
    }

    private static async Task<JsonElement> AlertAsync(HttpClient admin, long id)
    {
        var list = await admin.GetFromJsonAsync<JsonElement>("/api/alerts?page_size=200");
        return list.GetProperty("items").EnumerateArray().Single(a => a.GetProperty("id").GetInt64() == id);
    }

    /// <summary>Keeps each webhook body exactly as Alertmanager sent it (the evidence the drill leaves behind).</summary>
    private sealed class WebhookRecorder(ConcurrentQueue<(DateTimeOffset Time, string Body)> payloads) : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use(async (context, nextMiddleware) =>
            {
                if (HttpMethods.IsPost(context.Request.Method) && context.Request.Path == "/api/alerts/webhook")
                {
                    context.Request.EnableBuffering();
                    using var reader = new StreamReader(context.Request.Body, Encoding.UTF8, leaveOpen: true);
                    payloads.Enqueue((DateTimeOffset.UtcNow, await reader.ReadToEndAsync(context.RequestAborted)));
                    context.Request.Body.Position = 0;
                }

                await nextMiddleware(context);
            });
            next(app);
        };
    }
}
