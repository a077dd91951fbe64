using Microsoft.Extensions.Options;

namespace Limen.Features.RemoteConsole;

/// <summary>
/// Which browser pages may open a console WebSocket. Browsers send Origin on every WebSocket
/// handshake and a page cannot forge it, so checking it stops another site from riding a user's
/// ticket (cross-site WebSocket hijacking). A request without Origin is not from a browser page;
/// it still needs a ticket.
/// </summary>
public sealed class OriginPolicy(IOptions<ConsoleOptions> options)
{
    private readonly HashSet<string> allowed = options.Value.AllowedOrigins
        .Select(Normalize).OfType<string>().ToHashSet(StringComparer.Ordinal);

    public bool Allows(HttpRequest request)
    {
        var origin = request.Headers.Origin.ToString();
        if (string.IsNullOrEmpty(origin))
        {
            return true;
        }

        var normalized = Normalize(origin);
        return normalized is not null && (allowed.Contains(normalized) || IsOwn(normalized, request));
    }

    /// <summary>scheme://host:port in lower case with the port always written, or null when not an http(s) origin.</summary>
    public static string? Normalize(string origin)
    {
        if (!Uri.TryCreate(origin.TrimEnd('/'), UriKind.Absolute, out var uri)
            || uri.Scheme is not ("http" or "https")
            || uri.PathAndQuery != "/" || !string.IsNullOrEmpty(uri.UserInfo) || !string.IsNullOrEmpty(uri.Fragment))
        {
            return null;
        }

        return $"{uri.Scheme}://{uri.IdnHost.ToLowerInvariant()}:{uri.Port}";
    }

    /// <summary>
    /// The page Limen itself served: same host and port as the Host the browser sent. The scheme is
    /// not compared, because behind a TLS-terminating proxy the page is https while Kestrel sees http.
    /// </summary>
    private static bool IsOwn(string normalizedOrigin, HttpRequest request)
    {
        var host = request.Host;
        if (!host.HasValue)
        {
            return false;
        }

        var origin = new Uri(normalizedOrigin);
        var port = host.Port ?? origin.Port;
        return string.Equals(origin.IdnHost, host.Host, StringComparison.OrdinalIgnoreCase) && origin.Port == port;
    }
}
