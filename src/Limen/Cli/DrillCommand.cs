using System.CommandLine;
using Limen.Data;
using Limen.Features.Backup;
using Limen.Hosting;

namespace Limen.Cli;

public static class DrillCommand
{
    public static Command Create()
    {
        var archive = new Option<string?>("--archive") { Description = "Drill this archive instead of taking a fresh backup." };
        var output = new Option<string?>("--output") { Description = "Folder for the fresh backup (default Limen:Backup:Dir, else <state>/backups)." };
        var reportDir = new Option<string?>("--report-dir")
        {
            Description = "Folder for the evidence drill-<timestamp>.json/.md (default Limen:Backup:DrillReportDir, else <state>/drills).",
        };
        var stateDir = LimenCli.Common.StateDir();
        var databaseUrl = LimenCli.Common.DatabaseUrl();
        var command = new Command("drill",
            "Restore a fresh backup (or --archive) into a scratch database, run a second Limen on it, check it, drop it, and write the evidence.")
        {
            archive, output, reportDir, stateDir, databaseUrl,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var signals = new SignalCancellation(cancellationToken);
            DrillResult result;
            try
            {
                var overrides = LimenCli.Common.Overrides(parse, stateDir, databaseUrl);
                var configuration = CommandHost.Configuration(overrides);
                var options = BackupOptions.From(configuration);
                using var domains = new LibvirtDomainXml(configuration);
                var request = new DrillRequest(DatabaseConnection.Resolve(configuration), parse.GetValue(archive),
                    parse.GetValue(output) ?? options.BackupDir(configuration), parse.GetValue(reportDir) ?? options.ReportDir(configuration),
                    configuration, domains.Read, options, overrides);
                result = await Steps.OnConsoleAsync(steps => DrillRunner.RunAsync(request, LimenCli.WithStartLine(steps), TimeProvider.System, signals.Token));
            }
            catch (Exception e)
            {
                Console.Error.WriteLine($"FAILED: drill: {BackupFailedException.Describe(e)}");
                return LimenCli.ExitFailed;
            }

            var summary = $"Evidence: {result.JsonPath} and {result.MarkdownPath}";
            if (result.Passed)
            {
                Console.WriteLine($"Drill PASSED in {result.Report.DurationSeconds:0.0} s (restore {result.Report.RestoreSeconds:0.0} s). {summary}");
                return 0;
            }

            Console.Error.WriteLine($"Drill FAILED: {result.Report.Error}");
            Console.Error.WriteLine(summary);
            return LimenCli.ExitFailed;
        });
        return command;
    }
}
