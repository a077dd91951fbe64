using System.CommandLine;
using Limen.Hosting;

namespace Limen.Cli;

public static class ServeCommand
{
    public static Command Create()
    {
        var urls = new Option<string?>("--urls") { Description = $"Listen URLs (default {LimenOptions.DefaultUrls} or LIMEN_URLS)." };
        var stateDir = LimenCli.Common.StateDir();
        var databaseUrl = LimenCli.Common.DatabaseUrl();
        var command = new Command("serve", "Run the API, the web UI and the console proxy.") { urls, stateDir, databaseUrl };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var overrides = LimenCli.Common.Overrides(parse, stateDir, databaseUrl);
            if (parse.GetValue(urls) is { } listen)
            {
                overrides["urls"] = listen;
            }

            await using var app = LimenServer.Build(overrides);
            // The host's own lifetime handles SIGTERM/Ctrl+C and drains requests gracefully.
            var stopping = app.Lifetime.ApplicationStopping;
            await LimenStartup.PrepareAsync(app.Services, stopping);
            await app.RunAsync();
            return 0;
        });
        return command;
    }
}
