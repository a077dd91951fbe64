using Limen.Data;
using Microsoft.EntityFrameworkCore;

namespace Limen.Features.Events;

/// <summary>Where a resuming client starts: after its own id, or after <paramref name="From"/> with a reset first.</summary>
/// <param name="Reset">Null when the stream continues gap-free after the client's id; else why it cannot.</param>
public sealed record ResumePoint(long From, string? Reset);

public static class ResetReasons
{
    /// <summary>Events after the client's id were deleted by retention.</summary>
    public const string Expired = "expired";

    /// <summary>The id was never handed out by this database (a restored database, another installation).</summary>
    public const string UnknownId = "unknown_id";
}

/// <summary>The kept events as the stream replays them (docs/api.md, "Events": resuming).</summary>
public sealed class EventLog(IDbContextFactory<LimenDbContext> dbFactory, EventListener listener)
{
    /// <summary>
    /// Retention deletes a prefix of ids, so the client's id <paramref name="after"/> is still
    /// covered when the oldest kept event is at most after + 1. An id beyond the highest ever handed
    /// out is no id of this stream.
    /// </summary>
    public async Task<ResumePoint> ResumeAsync(long after, CancellationToken cancellationToken)
    {
        await using var db = await dbFactory.CreateDbContextAsync(cancellationToken);
        var bounds = await db.Database.SqlQuery<Bounds>($"""
            SELECT (SELECT min(id) FROM events) AS first, (SELECT max(id) FROM events) AS last,
                   (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM events_id_seq) AS handed
            """).SingleAsync(cancellationToken);
        var first = bounds.First ?? bounds.Handed + 1;
        var reset = after + 1 < first ? ResetReasons.Expired : after > bounds.Handed ? ResetReasons.UnknownId : null;
        if (reset is null)
        {
            return new ResumePoint(after, null);
        }

        // Both are ids below which nothing can still commit (ids follow commit order): the highest
        // kept event, and what the listener has read.
        return new ResumePoint(Math.Max(bounds.Last ?? 0, listener.Cursor), reset);
    }

    /// <summary>Up to <paramref name="limit"/> events after <paramref name="after"/> that the caller may see, in id order.</summary>
    public async Task<List<LimenEvent>> ReadAsync(long after, Guid userId, bool admin, int limit, CancellationToken cancellationToken)
    {
        await using var db = await dbFactory.CreateDbContextAsync(cancellationToken);
        var rows = db.Events.AsNoTracking().Where(e => e.Id > after);
        if (!admin)
        {
            rows = rows.Where(e => e.OwnerId == userId);
        }

        return await rows.OrderBy(e => e.Id).Take(limit).ToListAsync(cancellationToken);
    }

    private sealed class Bounds
    {
        public long? First { get; init; }
        public long? Last { get; init; }
        public long Handed { get; init; }
    }
}
