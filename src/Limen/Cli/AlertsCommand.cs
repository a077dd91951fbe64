using System.CommandLine;
using Limen.Data;
using Limen.Features.Alerts;
using Limen.Hosting;
using Microsoft.EntityFrameworkCore;

namespace Limen.Cli;

public static class AlertsCommand
{
    public static Command Create()
    {
        var alerts = new Command("alerts", "Alert delivery tools.");
        alerts.Subcommands.Add(CreateTest());
        return alerts;
    }

    private static Command CreateTest()
    {
        var alertmanager = new Option<string>("--alertmanager")
        {
            Description = "Alertmanager's base URL.",
            DefaultValueFactory = _ => "http://127.0.0.1:9093",
        };
        var timeout = new Option<int>("--timeout") { Description = "Seconds to wait for the webhook.", DefaultValueFactory = _ => 60 };
        var stateDir = LimenCli.Common.StateDir();
        var databaseUrl = LimenCli.Common.DatabaseUrl();
        var command = new Command("test",
            "Send a synthetic alert through Alertmanager and wait until Limen's webhook has stored it.")
        {
            alertmanager, timeout, stateDir, databaseUrl,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var seconds = parse.GetValue(timeout);
            if (!Uri.TryCreate(parse.GetValue(alertmanager), UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
            {
                Console.Error.WriteLine("--alertmanager must be an http(s) URL such as http://127.0.0.1:9093.");
                return 2;
            }

            if (seconds < 1)
            {
                Console.Error.WriteLine("--timeout must be 1 or more seconds.");
                return 2;
            }

            using var host = CommandHost.Build(LimenCli.Common.Overrides(parse, stateDir, databaseUrl));
            var dbFactory = host.Services.GetRequiredService<IDbContextFactory<LimenDbContext>>();
            DeliveryCheckResult result;
            try
            {
                result = await AlertDeliveryCheck.RunAsync(url, dbFactory, TimeSpan.FromSeconds(seconds), cancellationToken);
            }
            catch (HttpRequestException e)
            {
                Console.Error.WriteLine($"FAILED: could not hand the test alert to Alertmanager at {url}: {e.Message}");
                return 1;
            }
            catch (Exception e) when (Web.ProblemExceptionHandler.IsDatabaseUnavailable(e))
            {
                Console.Error.WriteLine($"FAILED: cannot read Limen's database to see whether the alert arrived: {e.GetBaseException().Message}");
                return 1;
            }

            if (!result.Delivered)
            {
                Console.Error.WriteLine($"FAILED: Alertmanager at {url} accepted the test alert (test_id {result.TestId}), but Limen's " +
                    $"webhook did not store it within {seconds} s. Check that alertmanager.yml's webhook url points at this " +
                    "Limen's /api/alerts/webhook, that its credentials_file holds the same token as Limen:Alerts:WebhookToken(File), " +
                    "and Alertmanager's log for 'Notify for alerts failed'.");
                return 1;
            }

            Console.WriteLine($"OK: test alert {result.TestId} went through Alertmanager ({url}) to Limen's webhook " +
                $"(receiver '{result.Receiver}') in {result.Elapsed.TotalSeconds:0.00} s.");
            return 0;
        });
        return command;
    }
}
