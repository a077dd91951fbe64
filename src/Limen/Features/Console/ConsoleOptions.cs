namespace Limen.Features.RemoteConsole;

/// <summary>Settings under "Limen:Console". The limits default to the original system's.</summary>
public sealed class ConsoleOptions
{
    public const string Section = "Limen:Console";

    /// <summary>How long a ticket from POST /api/vms/{id}/console may wait to be used.</summary>
    public int TicketSeconds { get; set; } = 30;

    /// <summary>
    /// Browser origins (scheme://host[:port]) allowed to open /vnc/{id} besides Limen's own: the
    /// origin whose host and port equal the request's Host is always allowed. Empty = own origin only.
    /// </summary>
    public string[] AllowedOrigins { get; set; } = [];

    /// <summary>Open sessions one user may have at once; the next connect gets 429.</summary>
    public int MaxSessionsPerUser { get; set; } = 2;

    /// <summary>A session with nothing from the browser for this long ends with idle_timeout.</summary>
    public int IdleTimeoutMinutes { get; set; } = 15;

    /// <summary>A session ends with max_duration this long after it started, busy or not.</summary>
    public int MaxDurationMinutes { get; set; } = 240;

    /// <summary>How often the idle and duration limits are checked and last activity is saved.</summary>
    public int SweepSeconds { get; set; } = 15;

    public TimeSpan TicketLifetime => TimeSpan.FromSeconds(TicketSeconds);
    public TimeSpan IdleTimeout => TimeSpan.FromMinutes(IdleTimeoutMinutes);
    public TimeSpan MaxDuration => TimeSpan.FromMinutes(MaxDurationMinutes);

    /// <summary>The first rule a setting breaks, or null: a bad value fails the start, not the first console.</summary>
    public string? Problem() =>
        TicketSeconds is < 5 or > 600 ? "Limen:Console:TicketSeconds must be between 5 and 600."
        : MaxSessionsPerUser < 1 ? "Limen:Console:MaxSessionsPerUser must be 1 or more."
        : IdleTimeoutMinutes < 1 ? "Limen:Console:IdleTimeoutMinutes must be 1 or more."
        : MaxDurationMinutes < 1 ? "Limen:Console:MaxDurationMinutes must be 1 or more."
        : SweepSeconds is < 1 or > 300 ? "Limen:Console:SweepSeconds must be between 1 and 300."
        : AllowedOrigins.FirstOrDefault(o => OriginPolicy.Normalize(o) is null) is { } bad
            ? $"Limen:Console:AllowedOrigins: '{bad}' is not an origin (scheme://host[:port])."
        : null;
}
