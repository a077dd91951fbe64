namespace Limen.Deploy.Tests;

/// <summary>deploy/alertmanager/alertmanager.yml checked with the real amtool.</summary>
public sealed class AmtoolTests
{
    [Fact]
    public async Task Alertmanager_config_is_valid()
    {
        var result = await Tool.AmtoolAsync("check-config", "alertmanager.yml");

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("SUCCESS", result.All);
        Assert.Contains("4 receivers", result.All);
        Assert.Contains("2 inhibit rules", result.All);
    }

    [Theory]
    [InlineData("critical", "LimenDown", "critical")]
    [InlineData("critical", "High5xxErrorRate", "critical")]
    [InlineData("warning", "HighHostCPUUsage", "warning")]
    [InlineData("info", "HighQuotaDenialRate", "info")]
    [InlineData("page", "SomethingElse", "default")]   // unknown severity
    [InlineData(null, "NoSeverity", "default")]
    public async Task Routes_by_severity(string? severity, string alertname, string expectedReceiver)
    {
        List<string> args = ["config", "routes", "test", "--config.file=alertmanager.yml",
            $"--verify.receivers={expectedReceiver}", $"alertname={alertname}", "instance=127.0.0.1"];
        if (severity is not null)
        {
            args.Add($"severity={severity}");
        }

        var result = await Tool.AmtoolAsync([.. args]);

        // Exit code 1 plus "Expected receivers did not match" when the route is wrong.
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Equal(expectedReceiver, result.StdOut.Trim());
    }

    [Fact]
    public async Task Every_receiver_is_the_limen_webhook_with_bearer_credentials_from_a_file()
    {
        var config = await File.ReadAllTextAsync(Repo.AlertmanagerConfig);

        foreach (var receiver in new[] { "default", "critical", "warning", "info" })
        {
            Assert.Matches($@"(?m)^  - name: {receiver}\s*$\s+webhook_configs:", config);
        }
        Assert.Contains("url: http://127.0.0.1:18443/api/alerts/webhook", config);
        Assert.Contains("send_resolved: true", config);
        Assert.Contains("credentials_file: /etc/limen/alertmanager-webhook-token", config);
        Assert.Contains("group_by: [alertname, instance]", config);
    }
}
