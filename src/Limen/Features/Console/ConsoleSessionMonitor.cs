using Microsoft.Extensions.Options;

namespace Limen.Features.RemoteConsole;

/// <summary>
/// Applies the idle and duration limits on a timer, saves last activity, drops stale tickets, and
/// ends every session when the server stops.
/// </summary>
public sealed class ConsoleSessionMonitor(
    ConsoleSessions sessions,
    ConsoleTickets tickets,
    IHostApplicationLifetime lifetime,
    IOptions<ConsoleOptions> options,
    ILogger<ConsoleSessionMonitor> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // ApplicationStopping fires before Kestrel drains its requests; a relay is a request that
        // would otherwise hold the shutdown for the full drain timeout.
        using var onStopping = lifetime.ApplicationStopping.Register(() => sessions.EndAll(ConsoleEndReasons.ServerRestart));
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(options.Value.SweepSeconds));
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    await sessions.SweepAsync(stoppingToken);
                    await tickets.PurgeAsync(stoppingToken);
                }
                catch (Exception e) when (Web.ProblemExceptionHandler.IsDatabaseUnavailable(e))
                {
                    // The limits above were applied in memory; only the bookkeeping waits for the database.
                    logger.LogDebug("Console sweep could not reach the database: {Message}", e.GetBaseException().Message);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }
}
