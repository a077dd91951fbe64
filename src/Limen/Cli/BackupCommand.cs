using System.CommandLine;
using Limen.Data;
using Limen.Features.Backup;
using Limen.Hosting;

namespace Limen.Cli;

public static class BackupCommand
{
    public static Command Create()
    {
        var output = new Option<string?>("--output") { Description = "Folder for the archive (default Limen:Backup:Dir, else <state>/backups)." };
        var keep = new Option<int?>("--keep") { Description = "Afterwards keep only the N newest archives in that folder." };
        var stateDir = LimenCli.Common.StateDir();
        var databaseUrl = LimenCli.Common.DatabaseUrl();
        var command = new Command("backup",
            "Write limen-backup-<UTC timestamp>.tar.gz: pg_dump, metadata CSVs, redacted configuration, domain XML, checksummed manifest.")
        {
            output, keep, stateDir, databaseUrl,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            if (parse.GetValue(keep) is < 1)
            {
                Console.Error.WriteLine("--keep must be 1 or more.");
                return LimenCli.ExitUsage;
            }

            using var signals = new SignalCancellation(cancellationToken);
            try
            {
                var configuration = CommandHost.Configuration(LimenCli.Common.Overrides(parse, stateDir, databaseUrl));
                var options = BackupOptions.From(configuration);
                using var domains = new LibvirtDomainXml(configuration);
                var request = new BackupRequest(DatabaseConnection.Resolve(configuration), parse.GetValue(output) ?? options.BackupDir(configuration),
                    parse.GetValue(keep), configuration, domains.Read, options.PgBinDir);
                var result = await Steps.OnConsoleAsync(steps => BackupCreator.CreateAsync(request, LimenCli.WithStartLine(steps), TimeProvider.System, signals.Token));
                Console.WriteLine($"Backup written: {result.ArchivePath} ({BackupCreator.Size(result.SizeBytes)}, " +
                    $"{result.Manifest.RowCounts.Values.Sum()} rows in {result.Manifest.RowCounts.Count} tables)" +
                    (result.Removed.Count > 0 ? $"; removed {result.Removed.Count} older archive(s)." : "."));
                return 0;
            }
            catch (Exception e)
            {
                Console.Error.WriteLine($"FAILED: backup: {BackupFailedException.Describe(e)}");
                Console.Error.WriteLine("No archive was written.");
                return LimenCli.ExitFailed;
            }
        });
        return command;
    }
}
