using System.CommandLine;
using Limen.Features.Backup;
using Limen.Hosting;

namespace Limen.Cli;

/// <summary>The `limen` command tree; each subcommand lives in its own file.</summary>
public static class LimenCli
{
    public static RootCommand Create()
    {
        var root = new RootCommand("Limen — a self-hosted virtual-machine platform on libvirt and PostgreSQL.");
        root.Subcommands.Add(ServeCommand.Create());
        root.Subcommands.Add(MigrateCommand.Create());
        root.Subcommands.Add(AgentCommand.Create());
        root.Subcommands.Add(AlertsCommand.Create());
        root.Subcommands.Add(BackupCommand.Create());
        root.Subcommands.Add(RestoreCommand.Create());
        root.Subcommands.Add(DrillCommand.Create());
        root.Subcommands.Add(EventsCommand.Create());
        return root;
    }

    /// <summary>A step failed (backup, restore, drill): the message says which.</summary>
    public const int ExitFailed = 1;

    /// <summary>Invalid arguments.</summary>
    public const int ExitUsage = 2;

    /// <summary>Restore declined to touch its target (not empty without --yes, `limen serve` connected).</summary>
    public const int ExitRefused = 3;

    /// <summary>
    /// Backup, restore and drill open their step timings with the fixed cost paid before the first
    /// step (runtime start, command line, configuration), so start-up shows next to the work.
    /// </summary>
    public static Steps WithStartLine(Steps steps)
    {
        steps.Note($"ok   Start: process, runtime and configuration ({CommandHost.SinceProcessStart().TotalSeconds:0.00} s)");
        return steps;
    }

    /// <summary>Options shared by the commands that read Limen's configuration.</summary>
    public static class Common
    {
        public static Option<string?> StateDir() => new("--state-dir") { Description = "State directory (default ./.limen or LIMEN_STATE_DIR)." };

        public static Option<string?> DatabaseUrl() => new("--database-url") { Description = "postgres:// URL of the database (default DATABASE_URL or the state directory's)." };

        public static Dictionary<string, string?> Overrides(ParseResult parse, Option<string?> stateDir, Option<string?> databaseUrl)
        {
            var overrides = new Dictionary<string, string?>();
            if (parse.GetValue(stateDir) is { } dir)
            {
                overrides["Limen:StateDir"] = dir;
            }

            if (parse.GetValue(databaseUrl) is { } url)
            {
                overrides["DATABASE_URL"] = url;
            }

            return overrides;
        }
    }
}
