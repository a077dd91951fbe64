using System.Text.RegularExpressions;

namespace Limen.Tests.Infrastructure;

/// <summary>
/// Real Prometheus and Alertmanager on free loopback ports, running the repo's deploy/ configs
/// copied to a temp dir with only the overlay deploy/README.md describes: intervals and `for`
/// shortened, chosen thresholds, the targets, the webhook URL and the token files.
/// </summary>
public sealed class MonitoringStack : IAsyncDisposable
{
    private readonly DirectoryInfo dir;
    private readonly List<ExternalProcess> processes = [];

    private MonitoringStack(DirectoryInfo dir, int prometheusPort, int alertmanagerPort)
    {
        this.dir = dir;
        Prometheus = new Uri($"http://127.0.0.1:{prometheusPort}/");
        Alertmanager = new Uri($"http://127.0.0.1:{alertmanagerPort}/");
    }

    public Uri Prometheus { get; }
    public Uri Alertmanager { get; }
    public string ConfigDir => dir.FullName;

    public string Logs => string.Join("\n", processes.Select(p => p.Output));

    /// <param name="limenTarget">host:port Prometheus scrapes as job "limen".</param>
    /// <param name="agentTarget">host:port Prometheus scrapes as job "limen-agent".</param>
    /// <param name="webhookUrl">Where Alertmanager delivers (a Limen's /api/alerts/webhook).</param>
    /// <param name="token">The alert webhook's bearer token (Alertmanager's credentials_file).</param>
    /// <param name="scrapeToken">Limen's scrape token (Prometheus's credentials_file next to prometheus.yml, as shipped).</param>
    /// <param name="thresholds">limen:threshold:NAME → value overrides.</param>
    public static async Task<MonitoringStack> StartAsync(string limenTarget, string agentTarget, Uri webhookUrl, string token,
        string scrapeToken, IReadOnlyDictionary<string, string> thresholds)
    {
        var stack = new MonitoringStack(Directory.CreateTempSubdirectory("limen-monitoring-"), Ports.Free(), Ports.Free());
        try
        {
            await stack.WriteConfigsAsync(limenTarget, agentTarget, webhookUrl, token, scrapeToken, thresholds);
            stack.processes.Add(ExternalProcess.Start("prometheus-alertmanager",
                $"--config.file={Path.Combine(stack.ConfigDir, "alertmanager.yml")}", $"--storage.path={Path.Combine(stack.ConfigDir, "am-data")}",
                $"--web.listen-address={stack.Alertmanager.Authority}", "--cluster.listen-address="));
            // resend-delay 1s: the first notification can be lost while Prometheus is still
            // discovering Alertmanager; by default the next one would come a minute later.
            stack.processes.Add(ExternalProcess.Start("prometheus",
                $"--config.file={Path.Combine(stack.ConfigDir, "prometheus", "prometheus.yml")}",
                $"--storage.tsdb.path={Path.Combine(stack.ConfigDir, "prom-data")}",
                $"--web.listen-address={stack.Prometheus.Authority}", "--rules.alert.resend-delay=1s"));

            using var http = new HttpClient();
            await Eventually.WaitAsync(async () => (await http.GetAsync(new Uri(stack.Alertmanager, "-/ready"))).IsSuccessStatusCode
                && (await http.GetAsync(new Uri(stack.Prometheus, "-/ready"))).IsSuccessStatusCode,
                TimeSpan.FromSeconds(30), "Prometheus and Alertmanager to be ready", () => stack.Logs);
            return stack;
        }
        catch
        {
            await stack.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var process in processes)
        {
            await process.DisposeAsync();
        }

        dir.Delete(recursive: true);
    }

    private async Task WriteConfigsAsync(string limenTarget, string agentTarget, Uri webhookUrl, string token, string scrapeToken,
        IReadOnlyDictionary<string, string> thresholds)
    {
        var deploy = Path.Combine(RepoPaths.Root, "deploy");
        var prometheusDir = Directory.CreateDirectory(Path.Combine(ConfigDir, "prometheus", "rules")).Parent!.FullName;
        await File.WriteAllTextAsync(Path.Combine(prometheusDir, "prometheus.yml"), Replace(
            await File.ReadAllTextAsync(Path.Combine(deploy, "prometheus", "prometheus.yml")),
            ("scrape_interval: 15s", "scrape_interval: 1s"),
            ("evaluation_interval: 30s", "evaluation_interval: 1s"),
            ("'127.0.0.1:18443'", $"'{limenTarget}'"),
            ("'127.0.0.1:9000'", $"'{agentTarget}'"),
            ("'127.0.0.1:9093'", $"'{Alertmanager.Authority}'")));
        // The shipped credentials_file is relative to prometheus.yml: only the file itself is written, no line rewritten.
        await File.WriteAllTextAsync(Path.Combine(prometheusDir, "limen-scrape-token"), scrapeToken + "\n");

        foreach (var rules in Directory.GetFiles(Path.Combine(deploy, "prometheus", "rules"), "*.yml"))
        {
            var text = await File.ReadAllTextAsync(rules);
            text = Regex.Replace(text, @"(?m)^(\s+)for: \S+$", "${1}for: 5s");
            text = Regex.Replace(text, @"(?m)^(\s+)interval: \S+$", "${1}interval: 1s");
            if (Path.GetFileName(rules) == "limen-thresholds.yml")
            {
                foreach (var (name, value) in thresholds)
                {
                    var pattern = $@"(record: limen:threshold:{Regex.Escape(name)}\n\s+expr: vector\()[^)]*(\))";
                    Assert.Matches(pattern, text);   // the shipped file must still have what we rewrite
                    text = Regex.Replace(text, pattern, "${1}" + value + "${2}");
                }
            }

            await File.WriteAllTextAsync(Path.Combine(prometheusDir, "rules", Path.GetFileName(rules)), text);
        }

        var tokenFile = Path.Combine(ConfigDir, "webhook-token");
        await File.WriteAllTextAsync(tokenFile, token);
        await File.WriteAllTextAsync(Path.Combine(ConfigDir, "alertmanager.yml"), Replace(
            await File.ReadAllTextAsync(Path.Combine(deploy, "alertmanager", "alertmanager.yml")),
            ("group_wait: 10s", "group_wait: 1s"),
            ("group_interval: 1m", "group_interval: 1s"),
            ("http://127.0.0.1:18443/api/alerts/webhook", webhookUrl.ToString()),
            ("/etc/limen/alertmanager-webhook-token", tokenFile)));
    }

    private static string Replace(string text, params (string From, string To)[] replacements)
    {
        foreach (var (from, to) in replacements)
        {
            Assert.Contains(from, text);   // the shipped config must still have what we rewrite
            text = text.Replace(from, to, StringComparison.Ordinal);
        }

        return text;
    }
}
