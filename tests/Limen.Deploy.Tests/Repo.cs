using System.Diagnostics;
using System.ComponentModel;

namespace Limen.Deploy.Tests;

/// <summary>Paths inside the repository, found by walking up to Limen.slnx.</summary>
internal static class Repo
{
    public static string Root { get; } = FindRoot();

    public static string PrometheusDir => Path.Combine(Root, "deploy", "prometheus");
    public static string PrometheusConfig => Path.Combine(PrometheusDir, "prometheus.yml");
    public static string RulesDir => Path.Combine(PrometheusDir, "rules");
    public static string RuleTestsDir => Path.Combine(PrometheusDir, "tests");
    public static string AlertRules => Path.Combine(RulesDir, "limen-alerts.yml");
    public static string ThresholdRules => Path.Combine(RulesDir, "limen-thresholds.yml");
    public static string AlertmanagerConfig => Path.Combine(Root, "deploy", "alertmanager", "alertmanager.yml");
    public static string RunbooksDir => Path.Combine(Root, "docs", "runbooks");

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Limen.slnx")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException($"Limen.slnx not found above {AppContext.BaseDirectory}");
    }
}

internal sealed record ToolResult(int ExitCode, string StdOut, string StdErr)
{
    public string All => StdOut + StdErr;

    public override string ToString() => $"exit {ExitCode}\n--- stdout ---\n{StdOut}\n--- stderr ---\n{StdErr}";
}

/// <summary>Runs an external tool. A tool that is not installed fails the test with a hint.</summary>
internal static class Tool
{
    public static async Task<ToolResult> RunAsync(string fileName, string workingDirectory, params string[] args)
    {
        var psi = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in args)
        {
            psi.ArgumentList.Add(arg);
        }

        Process process;
        try
        {
            process = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {fileName}");
        }
        catch (Win32Exception e)
        {
            Assert.Fail($"{fileName} is not installed or not on PATH ({e.Message}). " +
                        "Install the Debian packages: apt-get install prometheus prometheus-alertmanager");
            throw; // unreachable
        }

        using (process)
        using (var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2)))
        {
            var stdout = process.StandardOutput.ReadToEndAsync(timeout.Token);
            var stderr = process.StandardError.ReadToEndAsync(timeout.Token);
            await process.WaitForExitAsync(timeout.Token);
            return new ToolResult(process.ExitCode, await stdout, await stderr);
        }
    }

    public static Task<ToolResult> PromtoolAsync(params string[] args) => RunAsync("promtool", Repo.PrometheusDir, args);

    public static Task<ToolResult> AmtoolAsync(params string[] args) =>
        RunAsync("amtool", Path.GetDirectoryName(Repo.AlertmanagerConfig)!, args);
}
