using Limen.Features.Cluster;
using Limen.Features.Hosts;
using Limen.Web;

namespace Limen.Features.Health;

/// <summary>
/// A background service that repeats one unit of work and can never stop the host: every failure of
/// an attempt is caught, logged in one line, reported to <see cref="LoopHealth"/> (and so by
/// /api/health), and retried after a bounded exponential back-off — 1 s, 2 s, 4 s, … at most
/// <see cref="MaxBackoff"/>. Only the host's own stop ends the loop.
/// A loop given a <see cref="LeaderElection"/> runs only while this server leads: a follower's loop
/// waits, shown as <see cref="LoopStatuses.Standby"/>, and an attempt under way when leadership ends
/// is cancelled (that is not a failure).
/// </summary>
public abstract partial class BackgroundLoop(LoopHealth health, TimeProvider clock, ILogger logger, LeaderElection? leadership = null) : BackgroundService
{
    public static readonly TimeSpan FirstBackoff = TimeSpan.FromSeconds(1);
    public static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(60);

    /// <summary>The loop's name in /api/health and in the log (snake_case).</summary>
    public abstract string Name { get; }

    /// <summary>The pause between two successful attempts.</summary>
    protected abstract TimeSpan Interval { get; }

    /// <summary>Whether the first attempt runs at start or only after one <see cref="Interval"/>.</summary>
    protected virtual bool RunsAtStart => true;

    /// <summary>One attempt. Whatever it throws is a failed attempt, except cancellation by the host's stop.</summary>
    protected abstract Task RunOnceAsync(CancellationToken cancellationToken);

    /// <summary>Waits before the next attempt; a loop that can be woken (by an event) may return earlier.</summary>
    protected virtual Task WaitAsync(TimeSpan delay, CancellationToken cancellationToken) => Task.Delay(delay, clock, cancellationToken);

    /// <summary>1 s after the first failure, doubling with each further one, never more than <see cref="MaxBackoff"/>.</summary>
    public static TimeSpan Backoff(int consecutiveFailures) =>
        TimeSpan.FromTicks(Math.Min(MaxBackoff.Ticks, FirstBackoff.Ticks << Math.Clamp(consecutiveFailures - 1, 0, 16)));

    /// <summary>The reason health shows: a dependency that is down, or the loop's own error.</summary>
    public static string ReasonFor(Exception exception) =>
        exception is HypervisorUnavailableException ? LoopFailureReasons.LibvirtUnavailable
        : ProblemExceptionHandler.IsDatabaseUnavailable(exception) ? LoopFailureReasons.DatabaseUnavailable
        : LoopFailureReasons.Error;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var report = new LoopReport(LoopStatuses.Starting, 0, null, null, null, null);
        health.Report(Name, report);
        try
        {
            if (!RunsAtStart)
            {
                await WaitAsync(Interval, stoppingToken);
            }

            while (true)
            {
                var term = CancellationToken.None;
                if (leadership is not null)
                {
                    if (!leadership.IsLeader)
                    {
                        report = report with { Status = LoopStatuses.Standby, ConsecutiveFailures = 0, Reason = null, FailingSince = null, NextAttemptAt = null };
                        health.Report(Name, report);
                    }

                    term = await leadership.WaitForLeadershipAsync(stoppingToken);
                }

                using var attempt = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken, term);
                TimeSpan delay;
                try
                {
                    await RunOnceAsync(attempt.Token);
                    if (report.ConsecutiveFailures > 0)
                    {
                        LogRecovered(logger, Name, report.ConsecutiveFailures);
                    }

                    report = new LoopReport(LoopStatuses.Ok, 0, null, clock.GetUtcNow(), null, null);
                    delay = Interval;
                }
                catch (Exception) when (term.IsCancellationRequested && !stoppingToken.IsCancellationRequested)
                {
                    continue; // leadership ended under the attempt: standby, not a failure
                }
                catch (Exception e) when (!stoppingToken.IsCancellationRequested)
                {
                    report = Failed(report, e, out delay);
                }

                health.Report(Name, report);
                try
                {
                    await WaitAsync(delay, attempt.Token);
                }
                catch (OperationCanceledException) when (term.IsCancellationRequested && !stoppingToken.IsCancellationRequested)
                {
                    // Leadership ended during the pause; the next round reports standby and waits for it.
                }
            }
        }
        catch (Exception) when (stoppingToken.IsCancellationRequested)
        {
            // The host is stopping: whatever the last attempt or wait threw is part of that, not a failure.
        }
    }

    private LoopReport Failed(LoopReport previous, Exception e, out TimeSpan delay)
    {
        var now = clock.GetUtcNow();
        var failures = previous.ConsecutiveFailures + 1;
        var reason = ReasonFor(e);
        delay = Backoff(failures);
        var seconds = (int)delay.TotalSeconds;
        if (reason != LoopFailureReasons.Error)
        {
            // The dependency is down: its message says all, and a stack trace per retry would flood the log.
            LogDependencyDown(logger, Name, failures, seconds, e.GetBaseException().Message);
        }
        else if (previous.Reason != LoopFailureReasons.Error)
        {
            LogFailed(logger, Name, failures, seconds, e);
        }
        else
        {
            // The stack trace was logged at the first failure of this kind; repeat only the message.
            LogFailedAgain(logger, Name, failures, seconds, e.GetType().Name, e.Message);
        }

        var status = reason == LoopFailureReasons.Error && failures >= LoopHealth.FailingAfter ? LoopStatuses.Failing : LoopStatuses.Retrying;
        return new LoopReport(status, failures, reason, previous.LastSuccessAt, previous.FailingSince ?? now, now + delay);
    }

    [LoggerMessage(EventId = 1000, Level = LogLevel.Warning, Message = "Background loop {Loop} could not run (attempt {Attempt}, next in {RetrySeconds} s): {Reason}")]
    private static partial void LogDependencyDown(ILogger logger, string loop, int attempt, int retrySeconds, string reason);

    [LoggerMessage(EventId = 1001, Level = LogLevel.Error, Message = "Background loop {Loop} failed (attempt {Attempt}, next in {RetrySeconds} s)")]
    private static partial void LogFailed(ILogger logger, string loop, int attempt, int retrySeconds, Exception exception);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Error, Message = "Background loop {Loop} failed again (attempt {Attempt}, next in {RetrySeconds} s): {ExceptionType}: {Reason}")]
    private static partial void LogFailedAgain(ILogger logger, string loop, int attempt, int retrySeconds, string exceptionType, string reason);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Information, Message = "Background loop {Loop} recovered after {Failures} failed attempts")]
    private static partial void LogRecovered(ILogger logger, string loop, int failures);
}
