using System.CommandLine;
using Limen.Data;
using Limen.Features.Backup;
using Limen.Features.Hosts;
using Limen.Hosting;

namespace Limen.Cli;

public static class RestoreCommand
{
    public static Command Create()
    {
        var archive = new Argument<string>("ARCHIVE") { Description = "A limen-backup-*.tar.gz written by `limen backup`." };
        var database = new Option<string?>("--database")
        {
            Description = "postgres:// URL of the database to restore into (default: the configured one, as `limen serve` uses).",
        };
        var yes = new Option<bool>("--yes") { Description = "Replace a database that is not empty (without it, a terminal asks for the database name)." };
        var force = new Option<bool>("--force") { Description = "Restore even while `limen serve` is connected to the target." };
        var withConfig = new Option<bool>("--with-config")
        {
            Description = "Also write the archived configuration (secrets redacted) to <state>/restored-config-*.json for review.",
        };
        var redefine = new Option<bool>("--redefine-domains")
        {
            Description = "Define the archived libvirt domains that are missing (Limen:Hypervisor:Uri); otherwise libvirt is left alone.",
        };
        var stateDir = LimenCli.Common.StateDir();
        var command = new Command("restore",
            "Verify an archive completely, then restore it in one transaction, check row counts and migrate the schema forward.")
        {
            archive, database, yes, force, withConfig, redefine, stateDir,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var signals = new SignalCancellation(cancellationToken);
            try
            {
                var overrides = new Dictionary<string, string?>();
                if (parse.GetValue(stateDir) is { } dir)
                {
                    overrides["Limen:StateDir"] = dir;
                }

                var configuration = CommandHost.Configuration(overrides);
                var options = BackupOptions.From(configuration);
                var target = parse.GetValue(database) is { } url ? DatabaseConnection.FromUrl(url) : DatabaseConnection.Resolve(configuration);

                // The target is only read (never written) while the archive is verified, so both run
                // together; an archive problem is reported first, whatever the target's state.
                // On a pool thread, beside the verification: inspecting starts psql (a process start is not free).
                var inspecting = Task.Run(() => RestoreRunner.InspectAsync(target, options.PgBinDir, signals.Token));
                var confirmed = parse.GetValue(yes);
                var forced = parse.GetValue(force);
                // A fresh target that may be restored without asking is loaded while the archive is
                // verified; the feed holds back the dump's end until the archive is proven good.
                var feed = new DumpFeed();
                // pg_restore starts at once and is fed only once the inspection has allowed it (LoadWhileVerifyingAsync).
                var loading = Task.Run(() => RestoreRunner.LoadWhileVerifyingAsync(
                    inspecting, inspected => RestoreRunner.Refusal(inspected, confirmed, forced) is null, options.PgBinDir, feed, target, signals.Token));
                ExtractedArchive verified;
                try
                {
                    verified = await Steps.OnConsoleAsync(steps => RestoreRunner.VerifyAsync(parse.GetValue(archive)!, LimenCli.WithStartLine(steps), signals.Token,
                        RestoreRunner.FilesRead(parse.GetValue(withConfig), parse.GetValue(redefine)), feed));
                }
                catch
                {
                    await inspecting.ContinueWith(_ => { }, TaskScheduler.Default);
                    if (await loading.ContinueWith(decided => decided.IsCompletedSuccessfully ? decided.Result : null, TaskScheduler.Default) is { } abandoned)
                    {
                        await abandoned.ContinueWith(_ => { }, TaskScheduler.Default);
                    }

                    throw;
                }

                using var verifiedArchive = verified;
                var state = await inspecting;
                var early = await loading;
                if (early is null)
                {
                    // Nothing was loaded: the feed never had a reader.
                    if (!confirmed && !state.IsEmpty && (state.ServeConnections == 0 || forced))
                    {
                        confirmed = ConfirmOnTerminal(state);
                    }

                    if (RestoreRunner.Refusal(state, confirmed, forced) is { } refusal)
                    {
                        Console.Error.WriteLine($"REFUSED: {refusal}");
                        Console.Error.WriteLine("Nothing was restored.");
                        return LimenCli.ExitRefused;
                    }
                }

                var hypervisor = configuration.GetSection(HypervisorOptions.Section).Get<HypervisorOptions>() ?? new HypervisorOptions();
                var request = new RestoreRequest(target, confirmed, forced, options.PgBinDir,
                    parse.GetValue(redefine) ? hypervisor.Uri : null, parse.GetValue(withConfig) ? configuration.GetLimenOptions().FullStateDir : null);
                var result = await Steps.OnConsoleAsync(steps => RestoreRunner.RestoreAsync(verified, request, steps, TimeProvider.System, signals.Token, state, early));
                Console.WriteLine($"Restored {verified.ArchivePath} into {DatabaseConnection.Describe(target)} in {result.Duration.TotalSeconds:0.0} s: " +
                    $"{result.RowCounts.Sum(c => c.Restored)} rows in {result.RowCounts.Count} tables match the manifest" +
                    (result.AppliedMigrations.Count > 0 ? $"; migrated forward ({string.Join(", ", result.AppliedMigrations)})" : "") + ".");
                Console.WriteLine("Start `limen serve` again and check /api/health.");
                return 0;
            }
            catch (ArchiveRejectedException e)
            {
                Console.Error.WriteLine($"REFUSED: the archive cannot be trusted: {e.Message}");
                Console.Error.WriteLine("Nothing was restored.");
                return LimenCli.ExitFailed;
            }
            catch (Exception e)
            {
                Console.Error.WriteLine($"FAILED: restore: {BackupFailedException.Describe(e)}");
                return LimenCli.ExitFailed;
            }
        });
        return command;
    }

    /// <summary>An operator at a terminal confirms by typing the database's name; scripts must say --yes.</summary>
    private static bool ConfirmOnTerminal(TargetState state)
    {
        if (Console.IsInputRedirected || Console.IsOutputRedirected)
        {
            return false;
        }

        Console.Write($"Database {state.Database} is not empty ({state.Relations.Count} relations); restoring replaces ALL of its data.\n" +
            $"Type the database name ({state.Database}) to continue: ");
        return string.Equals(Console.ReadLine()?.Trim(), state.Database, StringComparison.Ordinal);
    }
}
