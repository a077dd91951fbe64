namespace Limen.Deploy.Tests;

/// <summary>deploy/prometheus checked and unit-tested with the real promtool.</summary>
public sealed class PromtoolTests
{
    public static TheoryData<string> RuleTestFiles()
    {
        var data = new TheoryData<string>();
        foreach (var file in Directory.GetFiles(Repo.RuleTestsDir, "*.yml").Order(StringComparer.Ordinal))
        {
            data.Add(Path.GetFileName(file));
        }
        return data;
    }

    [Fact]
    public async Task Prometheus_config_is_valid_and_loads_every_rule_file()
    {
        // As installed: deploy/prometheus/. copied into one folder, next to the scrape token file.
        using var installed = InstalledPrometheus.Create(withScrapeToken: true);
        var result = await Tool.RunAsync("promtool", installed.Path, "check", "config", "prometheus.yml");

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("prometheus.yml is valid prometheus config file syntax", result.All);
        // The rule_files glob must resolve (relative to prometheus.yml) to every file in rules/.
        var ruleFiles = Directory.GetFiles(Repo.RulesDir, "*.yml");
        Assert.Contains($"SUCCESS: {ruleFiles.Length} rule files found", result.All);
        foreach (var file in ruleFiles)
        {
            Assert.Contains($"Checking rules/{Path.GetFileName(file)}", result.All);
        }
    }

    [Fact]
    public async Task Prometheus_config_scrapes_limen_and_the_agent_and_sends_to_alertmanager()
    {
        var config = await File.ReadAllTextAsync(Repo.PrometheusConfig);

        Assert.Matches(@"(?m)^\s+- job_name: limen\s*$[\s\S]*?metrics_path: /api/metrics[\s\S]*?'127\.0\.0\.1:18443'", config);
        // Only the server's job carries the scrape token (the agent's /metrics has no user data and no auth).
        var serverJob = config[config.IndexOf("- job_name: limen\n", StringComparison.Ordinal)..config.IndexOf("- job_name: limen-agent", StringComparison.Ordinal)];
        Assert.Contains("    authorization:\n      type: Bearer\n      credentials_file: limen-scrape-token\n", serverJob);
        Assert.Equal(1, System.Text.RegularExpressions.Regex.Count(config, @"credentials_file:"));
        Assert.Matches(@"(?m)^\s+- job_name: limen-agent\s*$[\s\S]*?metrics_path: /metrics[\s\S]*?'127\.0\.0\.1:9000'", config);
        Assert.Contains("- targets: ['127.0.0.1:9093']", config);
        // Both jobs relabel instance to the host, so LimenDown's inhibition reaches agent alerts.
        Assert.Equal(2, System.Text.RegularExpressions.Regex.Count(config, @"target_label: instance"));
    }

    [Fact]
    public async Task The_limen_job_cannot_load_without_its_scrape_token_file()
    {
        using var installed = InstalledPrometheus.Create(withScrapeToken: false);
        var result = await Tool.RunAsync("promtool", installed.Path, "check", "config", "prometheus.yml");

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("limen-scrape-token", result.All);
    }

    [Fact]
    public async Task Rule_files_are_valid()
    {
        var files = Directory.GetFiles(Repo.RulesDir, "*.yml").Select(f => Path.Combine("rules", Path.GetFileName(f))).ToArray();
        Assert.NotEmpty(files);

        var result = await Tool.PromtoolAsync(["check", "rules", .. files]);

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("SUCCESS: 12 rules found", result.All);   // limen-alerts.yml
        Assert.Contains("SUCCESS: 10 rules found", result.All);   // limen-thresholds.yml
    }

    [Theory]
    [MemberData(nameof(RuleTestFiles))]
    public async Task Rule_unit_tests_pass(string testFile)
    {
        var result = await Tool.PromtoolAsync("test", "rules", Path.Combine("tests", testFile));

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("SUCCESS", result.All);
        Assert.DoesNotContain("FAILED", result.All);
    }

    [Fact]
    public void There_are_rule_unit_tests() => Assert.True(RuleTestFiles().Count >= 4);
}

/// <summary>deploy/prometheus/. copied into a temp folder, as an operator installs it into /etc/prometheus.</summary>
internal sealed class InstalledPrometheus : IDisposable
{
    private InstalledPrometheus(string path) => Path = path;

    public string Path { get; }

    public static InstalledPrometheus Create(bool withScrapeToken)
    {
        var dir = Directory.CreateTempSubdirectory("limen-test-prometheus-").FullName;
        foreach (var file in Directory.GetFiles(Repo.PrometheusDir, "*", SearchOption.AllDirectories))
        {
            var target = System.IO.Path.Combine(dir, System.IO.Path.GetRelativePath(Repo.PrometheusDir, file));
            Directory.CreateDirectory(System.IO.Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }

        if (withScrapeToken)
        {
            File.WriteAllText(System.IO.Path.Combine(dir, "limen-scrape-token"), "a-scrape-token\n");
        }

        return new InstalledPrometheus(dir);
    }

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
