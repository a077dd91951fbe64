using System.CommandLine;
using Limen.Features.Metrics;

namespace Limen.Cli;

public static class AgentCommand
{
    public static Command Create()
    {
        var urls = new Option<string>("--urls")
        {
            Description = $"Listen URLs (default {AgentServer.DefaultUrls}).",
            DefaultValueFactory = _ => AgentServer.DefaultUrls,
        };
        var command = new Command("agent", "Serve this host's health and metrics (/health, /metrics, /metrics.json); needs no database.") { urls };
        command.SetAction(async (parse, cancellationToken) =>
        {
            await using var app = AgentServer.Build(parse.GetValue(urls)!, new Dictionary<string, string?>());
            await app.RunAsync();
            return 0;
        });
        return command;
    }
}
