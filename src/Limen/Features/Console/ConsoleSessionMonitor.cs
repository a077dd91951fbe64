using Limen.Features.Health;
using Microsoft.Extensions.Options;

namespace Limen.Features.RemoteConsole;

/// <summary>
/// Applies the idle and duration limits on a timer, saves last activity, drops stale tickets, and
/// ends every session when the server stops. While the database is away the limits still apply in
/// memory; only the bookkeeping waits (and is retried) until it is back.
/// </summary>
public sealed class ConsoleSessionMonitor(
    ConsoleSessions sessions,
    ConsoleTickets tickets,
    IHostApplicationLifetime lifetime,
    IOptions<ConsoleOptions> options,
    LoopHealth loops,
    TimeProvider clock,
    ILogger<ConsoleSessionMonitor> logger) : BackgroundLoop(loops, clock, logger)
{
    public override string Name => "console_monitor";

    protected override TimeSpan Interval => TimeSpan.FromSeconds(options.Value.SweepSeconds);

    protected override bool RunsAtStart => false;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // ApplicationStopping fires before Kestrel drains its requests; a relay is a request that
        // would otherwise hold the shutdown for the full drain timeout.
        using var onStopping = lifetime.ApplicationStopping.Register(() => sessions.EndAll(ConsoleEndReasons.ServerRestart));
        await base.ExecuteAsync(stoppingToken);
    }

    protected override async Task RunOnceAsync(CancellationToken cancellationToken)
    {
        await sessions.SweepAsync(cancellationToken);
        await tickets.PurgeAsync(cancellationToken);
    }
}
