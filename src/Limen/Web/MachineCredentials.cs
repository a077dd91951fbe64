using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Authentication.JwtBearer;

namespace Limen.Web;

/// <summary>
/// Shared secrets that machines present as bearer tokens (Alertmanager on the alert webhook,
/// Prometheus on the metrics endpoint), as opposed to users' JWTs.
/// </summary>
public static class MachineCredentials
{
    private const string BearerPrefix = "Bearer ";

    /// <summary>
    /// The secret from a setting or, failing that, from a file — read on every call, so rotating the
    /// file needs no restart. Null when neither is set or the file is empty. Throws IOException or
    /// UnauthorizedAccessException when the file cannot be read.
    /// </summary>
    public static string? Resolve(string? value, string? file)
    {
        if (!string.IsNullOrEmpty(value))
        {
            return value;
        }

        if (string.IsNullOrEmpty(file))
        {
            return null;
        }

        var secret = File.ReadAllText(file).Trim();
        return secret.Length > 0 ? secret : null;
    }

    /// <summary>True when the Authorization header is "Bearer &lt;expected&gt;".</summary>
    public static bool Presents(string? authorization, string expected)
    {
        if (authorization is null || !authorization.StartsWith(BearerPrefix, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        // Hashing first gives both sides one length, so the comparison's time says nothing about the secret.
        var presented = SHA256.HashData(Encoding.UTF8.GetBytes(authorization[BearerPrefix.Length..].Trim()));
        return CryptographicOperations.FixedTimeEquals(presented, SHA256.HashData(Encoding.UTF8.GetBytes(expected)));
    }

    /// <summary>
    /// Sends the requests <paramref name="selector"/> picks to a scheme of their own instead of the
    /// JWT handler, which would count every machine token as auth_failure_total{reason="invalid_token"}.
    /// Selectors chain: each feature adds its own path.
    /// </summary>
    public static IServiceCollection ForwardFromJwt(this IServiceCollection services, Func<HttpContext, string?> selector) =>
        services.PostConfigure<JwtBearerOptions>(JwtBearerDefaults.AuthenticationScheme, jwt =>
        {
            var previous = jwt.ForwardDefaultSelector;
            jwt.ForwardDefaultSelector = context => selector(context) ?? previous?.Invoke(context);
        });

    /// <summary>A selector for one path (case-insensitive, trailing slash ignored) → <paramref name="scheme"/>.</summary>
    public static Func<HttpContext, string?> ForPath(string path, string scheme) => context =>
        string.Equals(context.Request.Path.Value?.TrimEnd('/'), path, StringComparison.OrdinalIgnoreCase) ? scheme : null;
}
