using System.Text.RegularExpressions;

namespace Limen.Deploy.Tests;

/// <summary>
/// Reads the rule files with a few regexes (they follow one simple layout, documented at their
/// top; no YAML library needed) and checks the contracts that promtool does not: names, labels,
/// annotations, runbooks, single-sourced thresholds and the rewritable `for:` format.
/// </summary>
public sealed partial class RuleFileTests
{
    private const string RunbookBase = "https://github.com/limen/limen/blob/main/docs/runbooks/";

    private static readonly string[] SeedAlerts =
    [
        "High5xxErrorRate", "HighAuthFailureRate", "HighConsoleSessionCount", "HighHostCPUUsage",
        "HighHostMemoryUsage", "HighHostDiskUsage", "HighQuotaDenialRate",
    ];

    private static readonly string[] OperationalAlerts =
        ["LimenDown", "DatabaseDown", "LibvirtDown", "BackupTooOld", "RestoreDrillStale"];

    private sealed record AlertRule(string Name, string Body);

    // One rule = from "- alert: Name" to the next "- alert:"/"- record:" or the end of the file.
    [GeneratedRegex(@"(?m)^\s+- alert: (?<name>\S+)\s*$(?<body>[\s\S]*?)(?=^\s+- (?:alert|record):|\z)")]
    private static partial Regex AlertBlock();

    [GeneratedRegex(@"limen:threshold:[a-z0-9_]+")]
    private static partial Regex ThresholdName();

    private static List<AlertRule> Alerts() =>
        AlertBlock().Matches(File.ReadAllText(Repo.AlertRules))
            .Select(m => new AlertRule(m.Groups["name"].Value, m.Groups["body"].Value))
            .ToList();

    public static TheoryData<string> AllAlertNames() => [.. SeedAlerts, .. OperationalAlerts];

    [Fact]
    public void Rule_file_holds_exactly_the_contracted_alerts()
    {
        var names = Alerts().Select(a => a.Name).Order(StringComparer.Ordinal).ToArray();

        Assert.Equal(SeedAlerts.Concat(OperationalAlerts).Order(StringComparer.Ordinal), names);
    }

    [Theory]
    [MemberData(nameof(AllAlertNames))]
    public void Alert_has_severity_summary_description_and_an_existing_runbook(string name)
    {
        var body = Assert.Single(Alerts(), a => a.Name == name).Body;

        Assert.Matches(@"(?m)^\s+severity: (critical|warning|info)\s*$", body);
        Assert.Matches(@"(?m)^\s+summary: ""[^""]+.*""\s*$", body);
        Assert.Matches(@"(?m)^\s+description: ""[^""]+.*""\s*$", body);
        Assert.Contains($"runbook_url: \"{RunbookBase}{name}.md\"", body);

        var runbook = Path.Combine(Repo.RunbooksDir, name + ".md");
        Assert.True(File.Exists(runbook), $"missing runbook {runbook}");
        var text = File.ReadAllText(runbook);
        Assert.StartsWith($"# {name}\n", text);
        Assert.Contains("## Meaning", text);
        Assert.Contains("## Confirm", text);
        Assert.Contains("## Act", text);
    }

    [Theory]
    [MemberData(nameof(AllAlertNames))]
    public void Alert_fires_once_per_instance_and_has_a_rewritable_for(string name)
    {
        var body = Assert.Single(Alerts(), a => a.Name == name).Body;

        // Aggregated by instance (LimenDown's `up` already has one series per target).
        Assert.True(name == "LimenDown" ? body.Contains("up{job=\"limen\"} == 0") : body.Contains("by (instance)"), body);
        Assert.DoesNotContain("without", body);
        // The drill overlay rewrites `^(\s+)for: \S+$`; keep exactly one such line per alert.
        Assert.Single(Regex.Matches(body, @"(?m)^\s+for: \d+[smh]\s*$"));
    }

    [Fact]
    public void Thresholds_are_single_sourced_constants_and_all_used()
    {
        var thresholds = File.ReadAllText(Repo.ThresholdRules);
        var defined = Regex.Matches(thresholds, @"(?m)^\s+- record: (limen:threshold:[a-z0-9_]+)\s*\n\s+expr: vector\([0-9.]+\)\s*$")
            .Select(m => m.Groups[1].Value).ToHashSet();
        var alerts = File.ReadAllText(Repo.AlertRules);
        var used = ThresholdName().Matches(alerts).Select(m => m.Value).ToHashSet();

        Assert.Equal(Regex.Count(thresholds, @"- record:"), defined.Count);
        Assert.Equal(defined.Order(StringComparer.Ordinal), used.Order(StringComparer.Ordinal));
        // No comparison against a bare number in an alert: thresholds come only from the records.
        Assert.DoesNotMatch(@"[<>]=?\s*[0-9]", alerts.Replace("== 0", "", StringComparison.Ordinal));
    }

    [Theory]
    [MemberData(nameof(AllAlertNames))]
    public void Every_alert_has_firing_and_not_firing_unit_tests(string name)
    {
        var tests = string.Join("\n", Directory.GetFiles(Repo.RuleTestsDir, "*.yml").Select(File.ReadAllText));
        var cases = Regex.Matches(tests, $@"alertname: {name}\s*\n\s+exp_alerts:(?<rest>.*)")
            .Select(m => m.Groups["rest"].Value.Trim()).ToList();

        Assert.Contains(cases, c => c == "[]");      // not firing (before `for`, below threshold, resolved)
        Assert.Contains(cases, c => c != "[]");      // firing
    }

    [Fact]
    public void Every_runbook_belongs_to_an_alert()
    {
        var names = Alerts().Select(a => a.Name).ToHashSet();
        var orphans = Directory.GetFiles(Repo.RunbooksDir, "*.md")
            .Select(Path.GetFileNameWithoutExtension)
            .Where(n => n != "README" && !names.Contains(n!));

        Assert.Empty(orphans);
    }
}
