using Microsoft.Extensions.Options;

namespace Limen.Features.Audit;

/// <summary>Settings under "Limen:Audit" (env: Limen__Audit__Name).</summary>
public sealed class AuditOptions
{
    public const string Section = "Limen:Audit";

    /// <summary>Anonymous audit rows written per client IP per minute; the rest are counted into one row.</summary>
    public int AnonymousRowsPerIpPerMinute { get; set; } = 20;

    /// <summary>Anonymous audit rows written per minute from all clients together (many addresses, e.g. IPv6).</summary>
    public int AnonymousRowsPerMinute { get; set; } = 200;

    public string? Problem() =>
        AnonymousRowsPerIpPerMinute < 1 ? "Limen:Audit:AnonymousRowsPerIpPerMinute must be 1 or more."
        : AnonymousRowsPerMinute < AnonymousRowsPerIpPerMinute ? "Limen:Audit:AnonymousRowsPerMinute must be at least Limen:Audit:AnonymousRowsPerIpPerMinute."
        : null;
}

/// <summary>The anonymous acts one window held back: from one client, or (ClientIp null) from all clients past the overall budget.</summary>
public sealed record SuppressedAudit(DateTimeOffset WindowStart, DateTimeOffset WindowEnd, string? ClientIp, IReadOnlyDictionary<string, int> Actions)
{
    public int Count => Actions.Values.Sum();
}

/// <summary>
/// Anyone can send anonymous requests that are audited (a logout without a session, a refused
/// console connect, a failed login for a name that does not exist), so their rows are budgeted in
/// fixed one-minute windows: per client IP <see cref="AuditOptions.AnonymousRowsPerIpPerMinute"/>,
/// and <see cref="AuditOptions.AnonymousRowsPerMinute"/> from everybody together. What is over
/// budget is counted, per action, and written as one aggregate row per client (plus one for the
/// overall overflow) once the window has ended — so a window adds at most
/// AnonymousRowsPerMinute + AnonymousRowsPerMinute / AnonymousRowsPerIpPerMinute + 1 rows, and
/// memory holds at most AnonymousRowsPerMinute clients. Per server process.
/// </summary>
public sealed class AnonymousAuditBudget(IOptions<AuditOptions> options)
{
    public static readonly TimeSpan Window = TimeSpan.FromMinutes(1);

    private readonly int perClient = options.Value.AnonymousRowsPerIpPerMinute;
    private readonly int overall = options.Value.AnonymousRowsPerMinute;
    private readonly Lock gate = new();
    private readonly List<SuppressedAudit> ended = [];
    private Dictionary<string, Client> clients = [];
    private Dictionary<string, int> overflow = [];
    private DateTimeOffset windowStart = DateTimeOffset.MinValue;
    private int written;

    /// <returns>True when the row may be written; false when it has been counted for the window's aggregate row instead.</returns>
    public bool TryAdmit(string clientIp, string action, DateTimeOffset now)
    {
        lock (gate)
        {
            Roll(now);
            clients.TryGetValue(clientIp, out var client);
            if (client is not null && client.Written >= perClient)
            {
                Count(client.Suppressed, action);
                return false;
            }

            if (written >= overall)
            {
                Count(overflow, action);
                return false;
            }

            if (client is null)
            {
                client = new Client();
                clients[clientIp] = client;
            }

            client.Written++;
            written++;
            return true;
        }
    }

    /// <summary>The aggregates of the windows that have ended by <paramref name="now"/>; each is handed out once.</summary>
    public IReadOnlyList<SuppressedAudit> TakeEnded(DateTimeOffset now)
    {
        lock (gate)
        {
            Roll(now);
            return Take();
        }
    }

    /// <summary>Everything held back, the running window included (at shutdown: nothing counted is lost).</summary>
    public IReadOnlyList<SuppressedAudit> TakeAll(DateTimeOffset now)
    {
        lock (gate)
        {
            Close(now);
            windowStart = Start(now);
            return Take();
        }
    }

    private void Roll(DateTimeOffset now)
    {
        var start = Start(now);
        if (start != windowStart)
        {
            Close(windowStart + Window);
            windowStart = start;
        }
    }

    private void Close(DateTimeOffset end)
    {
        foreach (var (ip, client) in clients)
        {
            if (client.Suppressed.Count > 0)
            {
                ended.Add(new SuppressedAudit(windowStart, end, ip, client.Suppressed));
            }
        }

        if (overflow.Count > 0)
        {
            ended.Add(new SuppressedAudit(windowStart, end, null, overflow));
        }

        clients = [];
        overflow = [];
        written = 0;
    }

    private List<SuppressedAudit> Take()
    {
        var taken = ended.ToList();
        ended.Clear();
        return taken;
    }

    private static DateTimeOffset Start(DateTimeOffset now) => new(now.UtcTicks - now.UtcTicks % Window.Ticks, TimeSpan.Zero);

    private static void Count(Dictionary<string, int> actions, string action) =>
        actions[action] = actions.GetValueOrDefault(action) + 1;

    private sealed class Client
    {
        public int Written { get; set; }
        public Dictionary<string, int> Suppressed { get; } = [];
    }
}

/// <summary>Writes the aggregate rows of ended windows every few seconds, and the running window's at shutdown.</summary>
public sealed partial class SuppressedAuditWriter(AnonymousAuditBudget budget, AuditTrail audit, TimeProvider clock, ILogger<SuppressedAuditWriter> logger)
    : BackgroundService
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(5);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval, clock);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            await WriteAsync(budget.TakeEnded(clock.GetUtcNow()), stoppingToken);
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        await WriteAsync(budget.TakeAll(clock.GetUtcNow()), cancellationToken);
    }

    private async Task WriteAsync(IReadOnlyList<SuppressedAudit> aggregates, CancellationToken cancellationToken)
    {
        foreach (var aggregate in aggregates)
        {
            try
            {
                await audit.RecordSuppressedAsync(aggregate, cancellationToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // The loop must outlive one bad write; the log keeps the count the table could not.
                LogWriteFailed(logger, aggregate.Count, aggregate.ClientIp ?? "(all clients)", aggregate.WindowStart, e.Message);
            }
        }
    }

    [LoggerMessage(EventId = 1400, Level = LogLevel.Warning,
        Message = "Could not write the audit row for {Count} anonymous acts held back from {ClientIp} in the window from {WindowStart:O}: {Reason}")]
    private static partial void LogWriteFailed(ILogger logger, int count, string clientIp, DateTimeOffset windowStart, string reason);
}

public static class AuditRegistration
{
    /// <summary>The audit trail, the anonymous budget and the writer of its aggregate rows.</summary>
    public static IServiceCollection AddAudit(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<AuditOptions>()
            .Bind(configuration.GetSection(AuditOptions.Section))
            .Validate(o => o.Problem() is null, "Limen:Audit: the anonymous row budgets must be 1 or more, the overall one at least the per-IP one.")
            .ValidateOnStart();
        services.AddSingleton<AnonymousAuditBudget>();
        services.AddSingleton<AuditTrail>();
        services.AddHostedService<SuppressedAuditWriter>();
        return services;
    }
}
