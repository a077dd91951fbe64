using Microsoft.Extensions.Options;

namespace Limen.Hosting;

/// <summary>
/// This server's stable id among the servers on one database: `Limen:ServerId` when set, else
/// `&lt;host name&gt;:&lt;listen port&gt;` (a fresh one per start on port 0). Stable, so a restarted server is the same server (it closes the
/// console sessions it relayed, and nobody else's); distinct for replicas on one machine (their
/// ports differ) even when they share a state directory, and for replicas on different machines.
/// </summary>
public sealed class ServerIdentity(IOptions<LimenOptions> options, IConfiguration configuration)
{
    /// <summary>events.server_id and console_sessions.server_id hold at most 64 characters.</summary>
    public const int MaxLength = 64;

    public string Id { get; } = Resolve(options.Value.ServerId, configuration["urls"] ?? LimenOptions.DefaultUrls, Environment.MachineName);

    public static string Resolve(string? configured, string urls, string machineName)
    {
        if (!string.IsNullOrWhiteSpace(configured))
        {
            var id = configured.Trim();
            return id.Length <= MaxLength ? id : throw new InvalidOperationException($"Limen:ServerId must be at most {MaxLength} characters.");
        }

        var first = urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() ?? LimenOptions.DefaultUrls;
        // "http://+:80" and "http://*:80" are not URIs; only the port after the last colon matters.
        var port = first.TrimEnd('/').Split(':')[^1];
        // A port the system picks (0) is no identity: such a server (tests) is a new one at each start.
        var instance = port == "0" ? "0-" + Guid.NewGuid().ToString("N")[..8] : port;
        var host = machineName.Length > MaxLength - 12 ? machineName[..(MaxLength - 12)] : machineName;
        return $"{host}:{instance}";
    }
}
