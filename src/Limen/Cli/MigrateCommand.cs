using System.CommandLine;
using Limen.Data;
using Limen.Hosting;

namespace Limen.Cli;

public static class MigrateCommand
{
    public static Command Create()
    {
        var stateDir = LimenCli.Common.StateDir();
        var databaseUrl = LimenCli.Common.DatabaseUrl();
        var command = new Command("migrate", "Apply pending database migrations and exit.") { stateDir, databaseUrl };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var host = CommandHost.Build(LimenCli.Common.Overrides(parse, stateDir, databaseUrl));
            await DatabaseStartup.MigrateAsync(host.Services, cancellationToken);
            Console.WriteLine("Database is up to date.");
            return 0;
        });
        return command;
    }
}
