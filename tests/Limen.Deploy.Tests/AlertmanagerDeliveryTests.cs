using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace Limen.Deploy.Tests;

/// <summary>
/// Runs the real prometheus-alertmanager with deploy/alertmanager/alertmanager.yml — only the
/// webhook URL (a listener in this test instead of limen serve), the token file and group_wait
/// are rewritten — posts alerts to it and proves the routing and the LimenDown inhibition by what
/// Alertmanager reports and, above all, by what it delivers.
/// </summary>
public sealed class AlertmanagerDeliveryTests
{
    private const string Token = "test-webhook-token";

    private sealed record Delivery(string? Authorization, string Path, string Receiver, string Version, string Status,
        string Alertname, string Instance, string Severity);

    [Fact]
    public async Task Routes_by_severity_and_LimenDown_inhibits_the_same_instance()
    {
        var dir = Directory.CreateTempSubdirectory("limen-am-test-");
        var hookPort = FreePort();
        var amPort = FreePort();
        var deliveries = new ConcurrentQueue<Delivery>();
        using var listener = new HttpListener();
        listener.Prefixes.Add($"http://127.0.0.1:{hookPort}/");
        listener.Start();
        var serving = ServeAsync(listener, deliveries);
        Process? alertmanager = null;
        try
        {
            var tokenFile = Path.Combine(dir.FullName, "token");
            await File.WriteAllTextAsync(tokenFile, Token);
            var config = Path.Combine(dir.FullName, "alertmanager.yml");
            await File.WriteAllTextAsync(config, Rewrite(await File.ReadAllTextAsync(Repo.AlertmanagerConfig),
                ("http://127.0.0.1:18443/api/alerts/webhook", $"http://127.0.0.1:{hookPort}/api/alerts/webhook"),
                ("/etc/limen/alertmanager-webhook-token", tokenFile),
                ("group_wait: 10s", "group_wait: 1s")));

            alertmanager = Start("prometheus-alertmanager", $"--config.file={config}",
                $"--storage.path={Path.Combine(dir.FullName, "data")}", $"--web.listen-address=127.0.0.1:{amPort}",
                "--cluster.listen-address=");
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{amPort}") };
            await Eventually(async () => (await http.GetAsync("/-/ready")).IsSuccessStatusCode, "Alertmanager ready");

            var post = await http.PostAsync("/api/v2/alerts", new StringContent(
                """
                [
                  {"labels": {"alertname": "LimenDown", "severity": "critical", "instance": "a", "job": "limen"}},
                  {"labels": {"alertname": "HighHostCPUUsage", "severity": "warning", "instance": "a"}},
                  {"labels": {"alertname": "HighHostCPUUsage", "severity": "warning", "instance": "b"}},
                  {"labels": {"alertname": "HighQuotaDenialRate", "severity": "info", "instance": "b"}},
                  {"labels": {"alertname": "DatabaseDown", "severity": "critical", "instance": "b"}},
                  {"labels": {"alertname": "High5xxErrorRate", "severity": "critical", "instance": "b"}}
                ]
                """, Encoding.UTF8, "application/json"));
            Assert.True(post.IsSuccessStatusCode, await post.Content.ReadAsStringAsync());

            // What Alertmanager says: state, inhibitedBy and the receiver each alert routes to.
            Dictionary<string, (string State, int InhibitedBy, string Receiver)> status = [];
            await Eventually(async () =>
            {
                using var doc = JsonDocument.Parse(await http.GetStringAsync("/api/v2/alerts"));
                status = doc.RootElement.EnumerateArray().ToDictionary(
                    a => $"{a.GetProperty("labels").GetProperty("alertname").GetString()}/{a.GetProperty("labels").GetProperty("instance").GetString()}",
                    a => (a.GetProperty("status").GetProperty("state").GetString()!,
                          a.GetProperty("status").GetProperty("inhibitedBy").GetArrayLength(),
                          string.Join(",", a.GetProperty("receivers").EnumerateArray().Select(r => r.GetProperty("name").GetString()))));
                return status.Count == 6 && status["HighHostCPUUsage/a"].State == "suppressed";
            }, "alerts listed with the CPU alert of instance a suppressed");
            Assert.Equal(("active", 0, "critical"), status["LimenDown/a"]);
            Assert.Equal(("suppressed", 1, "warning"), status["HighHostCPUUsage/a"]);   // same instance as LimenDown
            Assert.Equal(("active", 0, "warning"), status["HighHostCPUUsage/b"]);       // other instance: not muted
            Assert.Equal(("active", 0, "info"), status["HighQuotaDenialRate/b"]);
            Assert.Equal(("active", 0, "critical"), status["DatabaseDown/b"]);
            Assert.Equal(("suppressed", 1, "critical"), status["High5xxErrorRate/b"]);  // cause (DatabaseDown) pages instead

            // What Alertmanager delivers: one webhook per (alertname, instance) group, never the muted ones.
            string[] expected = ["LimenDown/a/critical", "HighHostCPUUsage/b/warning", "HighQuotaDenialRate/b/info", "DatabaseDown/b/critical"];
            await Eventually(() => Task.FromResult(expected.All(e => deliveries.Any(d => Key(d) == e))), "the four deliveries");
            await Task.Delay(TimeSpan.FromSeconds(2));   // muted groups would have flushed together with the others

            Assert.Equal(expected.Order(StringComparer.Ordinal), deliveries.Select(Key).Order(StringComparer.Ordinal));
            Assert.All(deliveries, d =>
            {
                Assert.Equal($"Bearer {Token}", d.Authorization);
                Assert.Equal("/api/alerts/webhook", d.Path);
                Assert.Equal("4", d.Version);
                Assert.Equal("firing", d.Status);
            });
        }
        finally
        {
            if (alertmanager is not null)
            {
                if (!alertmanager.HasExited)
                {
                    alertmanager.Kill(entireProcessTree: true);
                }
                await alertmanager.WaitForExitAsync();
                alertmanager.Dispose();
            }
            listener.Stop();
            await serving;
            dir.Delete(recursive: true);
        }
    }

    private static string Key(Delivery d) => $"{d.Alertname}/{d.Instance}/{d.Receiver}";

    private static string Rewrite(string text, params (string From, string To)[] replacements)
    {
        foreach (var (from, to) in replacements)
        {
            Assert.Contains(from, text);   // the shipped config must still have what we rewrite
            text = text.Replace(from, to, StringComparison.Ordinal);
        }
        return text;
    }

    private static async Task ServeAsync(HttpListener listener, ConcurrentQueue<Delivery> deliveries)
    {
        while (listener.IsListening)
        {
            HttpListenerContext ctx;
            try
            {
                ctx = await listener.GetContextAsync();
            }
            catch (Exception) when (!listener.IsListening)
            {
                return;
            }
            using (var reader = new StreamReader(ctx.Request.InputStream, Encoding.UTF8))
            using (var doc = JsonDocument.Parse(await reader.ReadToEndAsync()))
            {
                var root = doc.RootElement;
                foreach (var alert in root.GetProperty("alerts").EnumerateArray())
                {
                    var labels = alert.GetProperty("labels");
                    deliveries.Enqueue(new Delivery(ctx.Request.Headers["Authorization"], ctx.Request.Url!.AbsolutePath,
                        root.GetProperty("receiver").GetString()!, root.GetProperty("version").GetString()!,
                        alert.GetProperty("status").GetString()!, labels.GetProperty("alertname").GetString()!,
                        labels.GetProperty("instance").GetString()!, labels.GetProperty("severity").GetString()!));
                }
            }
            ctx.Response.StatusCode = 200;
            ctx.Response.Close();
        }
    }

    private static Process Start(string fileName, params string[] args)
    {
        var psi = new ProcessStartInfo(fileName) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
        {
            psi.ArgumentList.Add(arg);
        }
        try
        {
            var process = Process.Start(psi)!;
            // Drain its log so the pipe never fills.
            process.OutputDataReceived += (_, _) => { };
            process.ErrorDataReceived += (_, _) => { };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            return process;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            Assert.Fail($"{fileName} is not installed ({e.Message}); apt-get install prometheus-alertmanager");
            throw;
        }
    }

    private static async Task Eventually(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            try
            {
                if (await condition())
                {
                    return;
                }
            }
            catch (HttpRequestException) when (DateTime.UtcNow < deadline)
            {
                // not listening yet
            }
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"timed out waiting for {what}");
            }
            await Task.Delay(200);
        }
    }

    private static int FreePort()
    {
        using var socket = new TcpListener(IPAddress.Loopback, 0);
        socket.Start();
        return ((IPEndPoint)socket.LocalEndpoint).Port;
    }
}
