namespace Limen.Hosting;

/// <summary>Settings under the "Limen" configuration section (env: Limen__Name).</summary>
public sealed class LimenOptions
{
    public const string Section = "Limen";
    public const string DefaultUrls = "http://127.0.0.1:18443";

    /// <summary>Where keys, the generated admin password and the dev database live (0700).</summary>
    public string StateDir { get; set; } = ".limen";

    /// <summary>Initial password of the "admin" account; generated and shown once when empty.</summary>
    public string? AdminPassword { get; set; }

    /// <summary>Proxies whose X-Forwarded-For is believed; nobody else's.</summary>
    public string[] TrustedProxies { get; set; } = [];

    /// <summary>Largest accepted request body for ordinary JSON endpoints.</summary>
    public long MaxRequestBodyBytes { get; set; } = 1024 * 1024;

    /// <summary>This server's id among replicas; generated and kept in the state directory when empty.</summary>
    public string? ServerId { get; set; }

    public string FullStateDir => Path.GetFullPath(StateDir);
}

public sealed class AuthOptions
{
    public const string Section = "Limen:Auth";

    public int AccessTokenSeconds { get; set; } = 900;
    public int RefreshTokenDays { get; set; } = 14;
    public int LoginAttemptsPerIpPerMinute { get; set; } = 30;
    public int LoginAttemptsPerUserPerMinute { get; set; } = 10;
}
