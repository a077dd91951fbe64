using Limen.Data;
using Limen.Features.Cluster;
using Limen.Features.Health;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Limen.Features.Events;

/// <summary>
/// Deletes events older than <see cref="EventsOptions.RetentionHours"/>, once a minute. It deletes a
/// prefix of ids (everything up to the newest expired id), so what is kept is always "every event
/// after id X": a client that resumes before X is told <c>reset</c>, one after X misses nothing.
/// With several servers it runs on the leader only.
/// </summary>
public sealed class EventRetention : BackgroundLoop
{
    private readonly IDbContextFactory<LimenDbContext> dbFactory;
    private readonly IOptions<EventsOptions> options;
    private readonly TimeProvider clock;

    public EventRetention(
        IDbContextFactory<LimenDbContext> dbFactory, IOptions<EventsOptions> options, LoopHealth loops, LeaderElection leadership, TimeProvider clock,
        ILogger<EventRetention> logger)
        : base(loops, clock, logger, leadership)
    {
        this.dbFactory = dbFactory;
        this.options = options;
        this.clock = clock;
    }

    public override string Name => "event_retention";

    protected override TimeSpan Interval => TimeSpan.FromMinutes(1);

    protected override Task RunOnceAsync(CancellationToken cancellationToken) => DeleteExpiredAsync(cancellationToken);

    /// <summary>Deletes what is past retention now; returns how many events went.</summary>
    public async Task<int> DeleteExpiredAsync(CancellationToken cancellationToken)
    {
        var cutoff = clock.GetUtcNow() - options.Value.Retention;
        await using var db = await dbFactory.CreateDbContextAsync(cancellationToken);
        // `at` is taken before the id, so it is not quite monotonic in id: cut by the id, not by `at`.
        return await db.Database.ExecuteSqlAsync(
            $"DELETE FROM events WHERE id <= (SELECT max(id) FROM events WHERE at < {cutoff})", cancellationToken);
    }
}
