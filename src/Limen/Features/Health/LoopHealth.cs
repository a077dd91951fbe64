using System.Collections.Concurrent;

namespace Limen.Features.Health;

/// <summary>What /api/health says about one background loop (docs/api.md#health).</summary>
/// <param name="Status">One of <see cref="LoopStatuses"/>.</param>
/// <param name="ConsecutiveFailures">Failed attempts since the last success.</param>
/// <param name="Reason">Why the last attempt failed (one of <see cref="LoopFailureReasons"/>); null after a success.</param>
/// <param name="NextAttemptAt">When the loop tries again at the latest while it is failing (it may be woken earlier).</param>
public sealed record LoopReport(
    string Status, int ConsecutiveFailures, string? Reason, DateTimeOffset? LastSuccessAt, DateTimeOffset? FailingSince, DateTimeOffset? NextAttemptAt);

public static class LoopStatuses
{
    /// <summary>Registered; the first attempt has not finished yet.</summary>
    public const string Starting = "starting";

    public const string Ok = "ok";

    /// <summary>A loop that runs only on the leader, on a server that does not lead right now.</summary>
    public const string Standby = "standby";

    /// <summary>The last attempts failed, but briefly or because libvirt or the database is down (which health reports itself).</summary>
    public const string Retrying = "retrying";

    /// <summary>Failing for a reason of its own, <see cref="LoopHealth.FailingAfter"/> times in a row: health is degraded.</summary>
    public const string Failing = "failing";
}

/// <summary>The cause of a failed attempt, as health shows it to anyone (the log has the full message).</summary>
public static class LoopFailureReasons
{
    public const string LibvirtUnavailable = "libvirt_unavailable";
    public const string DatabaseUnavailable = "database_unavailable";
    public const string Error = "error";
}

/// <summary>The latest report of every background loop of this process, keyed by loop name.</summary>
public sealed class LoopHealth
{
    /// <summary>
    /// Consecutive failures with reason <see cref="LoopFailureReasons.Error"/> after which a loop is
    /// failing. Fewer are a blip (a restore replacing the database under a running server).
    /// </summary>
    public const int FailingAfter = 3;

    private readonly ConcurrentDictionary<string, LoopReport> reports = new(StringComparer.Ordinal);

    /// <summary>A consistent copy, ordered by name.</summary>
    public SortedDictionary<string, LoopReport> Snapshot() => new(reports, StringComparer.Ordinal);

    internal void Report(string loop, LoopReport report) => reports[loop] = report;

    /// <summary>A loop that ended for good (a removed host's): health stops showing it.</summary>
    internal void Forget(string loop) => reports.TryRemove(loop, out _);
}
