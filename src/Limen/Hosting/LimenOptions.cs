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

    /// <summary>
    /// How `limen serve` writes its log: <c>auto</c> (lines a person reads on a terminal, JSON lines
    /// when the output goes to a file or a collector), <c>text</c> or <c>json</c> (LIMEN_LOG_FORMAT).
    /// </summary>
    public string LogFormat { get; set; } = "auto";

    public string FullStateDir => Path.GetFullPath(StateDir);

    /// <summary>Whether the log is for a person, from <see cref="LogFormat"/> and where the output goes.</summary>
    public bool ReadableLog(bool outputIsTerminal) => LogFormat.ToLowerInvariant() switch
    {
        "auto" => outputIsTerminal,
        "text" => true,
        "json" => false,
        _ => throw new InvalidOperationException($"Limen:LogFormat must be auto, text or json, not '{LogFormat}'."),
    };
}

public sealed class AuthOptions
{
    public const string Section = "Limen:Auth";

    public int AccessTokenSeconds { get; set; } = 900;
    public int RefreshTokenDays { get; set; } = 14;
    public int LoginAttemptsPerIpPerMinute { get; set; } = 30;
    public int LoginAttemptsPerUserPerMinute { get; set; } = 10;

    /// <summary>How long a browser session lasts without use; each request in the second half renews it.</summary>
    public int BrowserSessionHours { get; set; } = 8;
}
