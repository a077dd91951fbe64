using System.Collections.Concurrent;
using System.Security.Claims;
using Limen.Data;
using Limen.Features.Audit;
using Limen.Features.Events;
using Limen.Features.Outcomes;
using Limen.Features.Vms;
using Limen.Hosting;
using Limen.Web;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Limen.Features.RemoteConsole;

public static class ConsoleEndReasons
{
    public const string ClientClosed = "client_closed";
    public const string VncClosed = "vnc_closed";
    public const string IdleTimeout = "idle_timeout";
    public const string MaxDuration = "max_duration";
    public const string VmStopped = "vm_stopped";
    public const string VmDeleted = "vm_deleted";
    /// <summary>The VM moved to another host; the client reconnects and reaches it there.</summary>
    public const string VmMigrated = "vm_migrated";
    public const string UserDisabled = "user_disabled";
    public const string AdminTerminated = "admin_terminated";
    /// <summary>The session's own user ended it (from another console tab, to make room under the limit).</summary>
    public const string UserTerminated = "user_terminated";
    public const string ServerRestart = "server_restart";
}

/// <summary>The data of console.session.opened|closed (reason only when closed).</summary>
public sealed record ConsoleSessionEvent(Guid SessionId, Guid VmId, Guid UserId, string? ServerId, string? Reason);

/// <summary>
/// The data of console.session.terminate_requested: <paramref name="ServerId"/> is the server relaying
/// the session, <paramref name="Reason"/> the end reason to record (absent in requests written
/// before users could end their own sessions: those were an admin's).
/// </summary>
public sealed record ConsoleTerminateRequest(Guid SessionId, Guid VmId, string ServerId, string? Reason = null);

/// <summary>A session this server is relaying right now.</summary>
public sealed class LiveConsoleSession(Guid id, Guid userId, Guid vmId, DateTimeOffset startedAt) : IDisposable
{
    private readonly CancellationTokenSource ending = new();
    private readonly TaskCompletionSource finished = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private string? endReason;
    private long lastActivityTicks = startedAt.UtcTicks;

    public Guid Id { get; } = id;
    public Guid UserId { get; } = userId;
    public Guid VmId { get; } = vmId;
    public DateTimeOffset StartedAt { get; } = startedAt;

    /// <summary>The VM's owner when the session started: who sees its events besides admins.</summary>
    public Guid? VmOwnerId { get; init; }

    public DateTimeOffset LastActivity => new(Interlocked.Read(ref lastActivityTicks), TimeSpan.Zero);

    /// <summary>Cancelled when something decides the session ends; the relay then closes both sides.</summary>
    public CancellationToken Ending => ending.Token;

    /// <summary>The first reason given wins: a VM deleted under an open console stays vm_deleted even though its VNC socket then closes too.</summary>
    public string? EndReason => Volatile.Read(ref endReason);

    /// <summary>Completes once the session is closed and recorded.</summary>
    public Task Finished => finished.Task;

    public void Touch(DateTimeOffset now) => Interlocked.Exchange(ref lastActivityTicks, now.UtcTicks);

    public bool TryEnd(string reason)
    {
        if (Interlocked.CompareExchange(ref endReason, reason, null) is not null)
        {
            return false;
        }

        ending.Cancel();
        return true;
    }

    internal void MarkFinished() => finished.TrySetResult();

    public void Dispose() => ending.Dispose();
}

/// <summary>
/// The console session manager: opens sessions within the per-user limit (checked under a row lock
/// in PostgreSQL, so racing connects cannot both take the last slot), ends them for every reason,
/// and records each in <c>console_sessions</c> and the audit trail. <c>console_active_sessions</c>
/// moves in the same lock as the registry, so it always equals the sessions being relayed.
/// Each row names the server relaying it; opening and closing emit console.session.opened|closed
/// with the row's write.
/// </summary>
public sealed class ConsoleSessions
{
    /// <summary>How long a terminate waits for the relay (here or on another server) to confirm the end.</summary>
    private static readonly TimeSpan TerminateWait = TimeSpan.FromSeconds(10);

    private readonly ConcurrentDictionary<Guid, LiveConsoleSession> live = new();
    private readonly Lock gate = new();
    private readonly IDbContextFactory<LimenDbContext> dbFactory;
    private readonly AuditTrail audit;
    private readonly ConsoleMetrics metrics;
    private readonly TimeProvider clock;
    private readonly IOptions<ConsoleOptions> options;
    private readonly ILogger<ConsoleSessions> logger;
    private readonly ServerIdentity server;
    private readonly EventOutlet events;

    public ConsoleSessions(IDbContextFactory<LimenDbContext> dbFactory, AuditTrail audit, ConsoleMetrics metrics, TimeProvider clock,
        IOptions<ConsoleOptions> options, ServerIdentity server, EventOutlet events, ILogger<ConsoleSessions> logger)
    {
        this.server = server;
        this.events = events;
        this.dbFactory = dbFactory;
        this.audit = audit;
        this.metrics = metrics;
        this.clock = clock;
        this.options = options;
        this.logger = logger;
    }

    public int LiveCount => live.Count;

    /// <summary>Open sessions of the user across all replicas (the database is the one that knows).</summary>
    public async Task<int> CountOpenAsync(Guid userId, CancellationToken cancellationToken)
    {
        await using var db = await dbFactory.CreateDbContextAsync(cancellationToken);
        return await db.ConsoleSessions.CountAsync(s => s.UserId == userId && s.EndedAt == null, cancellationToken);
    }

    /// <summary>Records a new session, or returns null when the user already has the maximum open.</summary>
    public async Task<LiveConsoleSession?> TryStartAsync(User user, Guid vmId, string? clientIp, string? userAgent, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        var row = new ConsoleSession
        {
            Id = Guid.NewGuid(),
            UserId = user.Id,
            VmId = vmId,
            StartedAt = now,
            LastActivityAt = now,
            ClientIp = clientIp,
            UserAgent = userAgent is { Length: > 512 } ? userAgent[..512] : userAgent,
            ServerId = server.Id,
        };
        Guid? ownerId;

        await using (var db = await dbFactory.CreateDbContextAsync(cancellationToken))
        {
            await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
            // Serializes this user's connects (here and on other replicas) for the count and insert below.
            await db.Database.ExecuteSqlAsync($"SELECT 1 FROM users WHERE id = {user.Id} FOR UPDATE", cancellationToken);
            var open = await db.ConsoleSessions.CountAsync(s => s.UserId == user.Id && s.EndedAt == null, cancellationToken);
            if (open >= options.Value.MaxSessionsPerUser)
            {
                return null;
            }

            ownerId = await db.Vms.Where(v => v.Id == vmId).Select(v => (Guid?)v.OwnerId).FirstOrDefaultAsync(cancellationToken);
            db.ConsoleSessions.Add(row);
            events.Stage(db, SessionEvent(EventTypes.ConsoleSessionOpened, row, ownerId));
            await db.SaveChangesAsync(cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        }

        var session = new LiveConsoleSession(row.Id, user.Id, vmId, now) { VmOwnerId = ownerId };
        lock (gate)
        {
            live[session.Id] = session;
            metrics.ActiveSessions.Set(live.Count);
        }

        metrics.SessionsStarted.Inc();
        await audit.RecordAsync(new AuditEvent("console.session.start", AuditResults.Success, "vm", vmId.ToString(),
            Details: new { session_id = session.Id }, UserId: user.Id, Username: user.Username), CancellationToken.None);
        return session;
    }

    /// <summary>
    /// Closes the session's record once the relay has let go of both sides. The relay's own reason
    /// counts only if nothing else ended the session first.
    /// </summary>
    public async Task CompleteAsync(LiveConsoleSession session, User user, string relayReason)
    {
        session.TryEnd(relayReason);
        var reason = session.EndReason!;
        lock (gate)
        {
            live.TryRemove(session.Id, out _);
            metrics.ActiveSessions.Set(live.Count);
        }

        metrics.SessionsEnded.WithLabels(reason).Inc();
        var now = clock.GetUtcNow();
        try
        {
            await using var db = await dbFactory.CreateDbContextAsync();
            await using (var transaction = await db.Database.BeginTransactionAsync())
            {
                var closed = await db.ConsoleSessions.Where(s => s.Id == session.Id && s.EndedAt == null).ExecuteUpdateAsync(set => set
                    .SetProperty(s => s.EndedAt, now)
                    .SetProperty(s => s.EndReason, reason)
                    .SetProperty(s => s.LastActivityAt, session.LastActivity));
                if (closed == 1)
                {
                    events.Stage(db, new EventDraft(EventTypes.ConsoleSessionClosed, session.VmOwnerId, session.VmId,
                        new ConsoleSessionEvent(session.Id, session.VmId, session.UserId, server.Id, reason)));
                    await db.SaveChangesAsync();
                }

                await transaction.CommitAsync();
            }

            await audit.RecordAsync(new AuditEvent("console.session.end", AuditResults.Success, "vm", session.VmId.ToString(),
                Details: new { session_id = session.Id, reason, seconds = (int)(now - session.StartedAt).TotalSeconds },
                UserId: user.Id, Username: user.Username));
        }
        catch (Exception e) when (Web.ProblemExceptionHandler.IsDatabaseUnavailable(e))
        {
            // The row stays open; the next start closes it as server_restart. The log keeps the truth.
            logger.LogWarning("Console session {SessionId} ended ({Reason}) but could not be recorded: {Message}", session.Id, reason, e.GetBaseException().Message);
        }
        finally
        {
            // Whoever waits for the end (an admin's DELETE) must not wait on a failed write.
            session.MarkFinished();
            session.Dispose();
        }
    }

    /// <summary>Ends a session relayed here; false when no such session is live on this server.</summary>
    public bool End(Guid sessionId, string reason) => live.TryGetValue(sessionId, out var session) && session.TryEnd(reason);

    public LiveConsoleSession? Find(Guid sessionId) => live.GetValueOrDefault(sessionId);

    public void EndForUser(Guid userId, string reason) => EndWhere(s => s.UserId == userId, reason);

    public void EndForVm(Guid vmId, string reason) => EndWhere(s => s.VmId == vmId, reason);

    /// <summary>Ends every live session (server shutdown); each relay then closes and records its own.</summary>
    public void EndAll(string reason) => EndWhere(_ => true, reason);

    /// <summary>Applies the idle and duration limits and saves each live session's last activity.</summary>
    public async Task SweepAsync(CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        foreach (var session in live.Values)
        {
            if (now - session.StartedAt >= options.Value.MaxDuration)
            {
                session.TryEnd(ConsoleEndReasons.MaxDuration);
            }
            else if (now - session.LastActivity >= options.Value.IdleTimeout)
            {
                session.TryEnd(ConsoleEndReasons.IdleTimeout);
            }
        }

        await using var db = await dbFactory.CreateDbContextAsync(cancellationToken);
        foreach (var session in live.Values.Where(s => s.EndReason is null))
        {
            var lastActivity = session.LastActivity;
            await db.ConsoleSessions.Where(s => s.Id == session.Id && s.EndedAt == null && s.LastActivityAt < lastActivity)
                .ExecuteUpdateAsync(set => set.SetProperty(s => s.LastActivityAt, lastActivity), cancellationToken);
        }
    }

    /// <summary>
    /// At start, before anything listens: sessions this server's previous run left open (it died
    /// without closing them). Other servers' sessions are theirs — they may be relaying them right
    /// now. Rows from before replicas (no server) were this single server's.
    /// </summary>
    public static async Task CloseLeftoversAsync(IServiceProvider services, CancellationToken cancellationToken)
    {
        var dbFactory = services.GetRequiredService<IDbContextFactory<LimenDbContext>>();
        var now = services.GetRequiredService<TimeProvider>().GetUtcNow();
        var serverId = services.GetRequiredService<ServerIdentity>().Id;
        var outlet = services.GetRequiredService<EventOutlet>();
        await using var db = await dbFactory.CreateDbContextAsync(cancellationToken);
        var open = await db.ConsoleSessions.Where(s => s.EndedAt == null && (s.ServerId == serverId || s.ServerId == null)).ToListAsync(cancellationToken);
        if (open.Count == 0)
        {
            return;
        }

        var vmIds = open.Select(s => s.VmId).Distinct().ToList();
        var owners = await db.Vms.Where(v => vmIds.Contains(v.Id)).ToDictionaryAsync(v => v.Id, v => v.OwnerId, cancellationToken);
        foreach (var session in open)
        {
            session.EndedAt = now;
            session.EndReason = ConsoleEndReasons.ServerRestart;
            outlet.Stage(db, SessionEvent(EventTypes.ConsoleSessionClosed, session, owners.TryGetValue(session.VmId, out var owner) ? owner : null));
        }

        await db.SaveChangesAsync(cancellationToken);
        var audit = services.GetRequiredService<AuditTrail>();
        foreach (var session in open)
        {
            await audit.RecordAsync(new AuditEvent("console.session.end", AuditResults.Success, "vm", session.VmId.ToString(),
                Details: new { session_id = session.Id, reason = ConsoleEndReasons.ServerRestart }, UserId: session.UserId), cancellationToken);
        }

        services.GetRequiredService<ILogger<ConsoleSessions>>()
            .LogWarning("Closed {Count} console sessions left open by the previous run (server_restart)", open.Count);
    }

    /// <summary>Polls the row until it is closed (by the server relaying it) or the time is up; true when closed.</summary>
    public async Task<bool> WaitForClosedAsync(Guid sessionId, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = clock.GetUtcNow() + timeout;
        while (true)
        {
            await using (var db = await dbFactory.CreateDbContextAsync(cancellationToken))
            {
                if (await db.ConsoleSessions.AnyAsync(s => s.Id == sessionId && s.EndedAt != null, cancellationToken))
                {
                    return true;
                }
            }

            if (clock.GetUtcNow() >= deadline)
            {
                return false;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100), clock, cancellationToken);
        }
    }

    /// <summary>Sessions newest first; non-admins see only their own, whatever the filter says.</summary>
    public async Task<Outcome<PagedList<ConsoleSessionResponse>>> ListAsync(
        ConsoleSessionQuery query, PageRequest page, ClaimsPrincipal caller, CancellationToken cancellationToken)
    {
        if (page.Validate() is { } problem)
        {
            return new Invalid(problem.Field, problem.Detail);
        }

        await using var db = await dbFactory.CreateDbContextAsync(cancellationToken);
        var rows = db.ConsoleSessions.AsNoTracking();
        var userId = caller.IsAdmin() ? query.UserId : caller.GetUserId();
        if (userId is { } u)
        {
            rows = rows.Where(s => s.UserId == u);
        }

        if (query.VmId is { } vmId)
        {
            rows = rows.Where(s => s.VmId == vmId);
        }

        if (query.Active is { } active)
        {
            rows = active ? rows.Where(s => s.EndedAt == null) : rows.Where(s => s.EndedAt != null);
        }

        var total = await rows.CountAsync(cancellationToken);
        var items = await rows.OrderByDescending(s => s.StartedAt).ThenBy(s => s.Id).Skip(page.Skip).Take(page.Size).ToListAsync(cancellationToken);
        return new PagedList<ConsoleSessionResponse>(items.ConvertAll(s => new ConsoleSessionResponse(
            s.Id, s.UserId, s.VmId, s.StartedAt,
            // The live value is fresher than the row, which is saved once per sweep.
            Find(s.Id)?.LastActivity ?? s.LastActivityAt,
            s.EndedAt, s.EndReason, s.ClientIp, s.UserAgent, s.EndedAt is null)), total, page.Number, page.Size);
    }

    /// <summary>
    /// Ends a session wherever it is relayed: here directly; on another server by marking the intent
    /// (end_reason admin_terminated, still open) and sending that server
    /// console.session.terminate_requested. True once the end is confirmed; false if the other
    /// server has not confirmed within 10 s: the record is then closed here, so a session of a
    /// server that is gone stops counting against its user's limit; a relay still running ends when
    /// the request reaches it.
    /// </summary>
    public async Task<Outcome<bool>> TerminateAsync(Guid sid, ClaimsPrincipal caller, CancellationToken cancellationToken)
    {
        await using var db = await dbFactory.CreateDbContextAsync(cancellationToken);
        var row = await db.ConsoleSessions.FirstOrDefaultAsync(s => s.Id == sid, cancellationToken);
        var callerId = caller.GetUserId();
        if (row is null || (row.UserId != callerId && !caller.IsAdmin()))
        {
            return new NotFound("The console session");
        }

        // Admins end anybody's (admin_terminated); a user ends their own (user_terminated: the
        // console page offers it when the session limit is reached).
        var reason = row.UserId == callerId ? ConsoleEndReasons.UserTerminated : ConsoleEndReasons.AdminTerminated;

        if (row.EndedAt is not null)
        {
            await audit.RecordAsync(new AuditEvent("console.session.terminate", AuditResults.Failure, "console_session", sid.ToString(), "already_ended"), cancellationToken);
            return new Conflict($"The session already ended ({row.EndReason}).");
        }

        if (Find(sid) is { } liveSession)
        {
            liveSession.TryEnd(reason);
            // Answer once the connection is really closed and recorded.
            await liveSession.Finished.WaitAsync(TerminateWait, cancellationToken);
        }
        else if (row.ServerId is { } relay && relay != server.Id)
        {
            var ownerId = await VmOwnerAsync(db, row.VmId, cancellationToken);
            row.EndReason = reason;
            events.Stage(db, new EventDraft(EventTypes.ConsoleSessionTerminateRequested, ownerId, row.VmId, new ConsoleTerminateRequest(row.Id, row.VmId, relay, reason)));
            await db.SaveChangesAsync(cancellationToken);
            var confirmed = await WaitForClosedAsync(sid, TerminateWait, cancellationToken);
            if (!confirmed)
            {
                await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
                var now = clock.GetUtcNow();
                if (await db.ConsoleSessions.Where(s => s.Id == sid && s.EndedAt == null)
                        .ExecuteUpdateAsync(set => set.SetProperty(s => s.EndedAt, now), cancellationToken) == 1)
                {
                    events.Stage(db, SessionEvent(EventTypes.ConsoleSessionClosed, row, ownerId));
                    await db.SaveChangesAsync(cancellationToken);
                }

                await transaction.CommitAsync(cancellationToken);
            }

            await audit.RecordAsync(new AuditEvent("console.session.terminate", AuditResults.Success, "console_session", sid.ToString(),
                Details: new { user_id = row.UserId, vm_id = row.VmId, reason, server_id = relay, confirmed }), cancellationToken);
            return confirmed;
        }
        else
        {
            // A record no relay holds (this server's previous run died before it could close it).
            row.EndedAt = clock.GetUtcNow();
            row.EndReason = reason;
            var ownerId = await VmOwnerAsync(db, row.VmId, cancellationToken);
            events.Stage(db, SessionEvent(EventTypes.ConsoleSessionClosed, row, ownerId));
            await db.SaveChangesAsync(cancellationToken);
        }

        await audit.RecordAsync(new AuditEvent("console.session.terminate", AuditResults.Success, "console_session", sid.ToString(),
            Details: new { user_id = row.UserId, vm_id = row.VmId, reason }), cancellationToken);
        return true;
    }

    /// <summary>console.session.opened|closed for a row, seen by the VM's owner and admins.</summary>
    public static EventDraft SessionEvent(string type, ConsoleSession row, Guid? vmOwnerId) =>
        new(type, vmOwnerId, row.VmId, new ConsoleSessionEvent(row.Id, row.VmId, row.UserId, row.ServerId, row.EndReason));

    /// <summary>Who besides admins sees the session's events; null once the VM is gone.</summary>
    private static Task<Guid?> VmOwnerAsync(LimenDbContext db, Guid vmId, CancellationToken cancellationToken) =>
        db.Vms.Where(v => v.Id == vmId).Select(v => (Guid?)v.OwnerId).FirstOrDefaultAsync(cancellationToken);

    private void EndWhere(Func<LiveConsoleSession, bool> match, string reason)
    {
        foreach (var session in live.Values.Where(match))
        {
            session.TryEnd(reason);
        }
    }
}
