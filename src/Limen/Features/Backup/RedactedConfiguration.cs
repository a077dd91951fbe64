using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Limen.Data;
using Npgsql;

namespace Limen.Features.Backup;

/// <summary>
/// Limen's effective configuration for the archive, with every secret replaced by "[redacted]":
/// values of keys that name a password, secret, token or key, and the password inside connection
/// strings. Only Limen's own sections are taken — the process environment (PATH, HOME, …) is not.
/// </summary>
public static partial class RedactedConfiguration
{
    public const string Redacted = "[redacted]";

    private static readonly JsonSerializerOptions Indented = new()
    {
        WriteIndented = true,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    private static readonly string[] Sections = ["Limen", "ConnectionStrings", "DATABASE_URL", "urls", "Kestrel", "Logging"];

    public static byte[] Serialize(IConfiguration configuration)
    {
        var root = new JsonObject
        {
            ["_note"] = "Limen's configuration when the backup was taken; secrets are redacted and must come from their original source on restore.",
        };
        foreach (var name in Sections)
        {
            var section = configuration.GetSection(name);
            if (ToNode(section, name) is { } node)
            {
                root[name] = node;
            }
        }

        return JsonSerializer.SerializeToUtf8Bytes(root, Indented);
    }

    private static JsonNode? ToNode(IConfigurationSection section, string path)
    {
        var children = section.GetChildren().ToList();
        if (children.Count == 0)
        {
            return section.Value is null ? null : JsonValue.Create(Redact(path, section.Key, section.Value));
        }

        var node = new JsonObject();
        foreach (var child in children.OrderBy(c => c.Key, StringComparer.Ordinal))
        {
            if (ToNode(child, path + ":" + child.Key) is { } value)
            {
                node[child.Key] = value;
            }
        }

        return node;
    }

    public static string Redact(string path, string key, string value)
    {
        if (value.Length == 0)
        {
            return value;
        }

        if (path.StartsWith("ConnectionStrings:", StringComparison.OrdinalIgnoreCase) || path.Equals("DATABASE_URL", StringComparison.OrdinalIgnoreCase))
        {
            return ConnectionWithoutPassword(value);
        }

        // Paths to secret files are not secrets (Limen:Alerts:WebhookTokenFile).
        return SecretKey().IsMatch(key) && !PathKey().IsMatch(key) ? Redacted : value;
    }

    private static string ConnectionWithoutPassword(string value)
    {
        try
        {
            var builder = new NpgsqlConnectionStringBuilder(DatabaseConnection.FromUrl(value));
            var hadPassword = !string.IsNullOrEmpty(builder.Password);
            builder.Password = null;
            return builder.ConnectionString + (hadPassword ? ";Password=" + Redacted : "");
        }
        catch (Exception e) when (e is ArgumentException or UriFormatException or FormatException)
        {
            return Redacted;
        }
    }

    /// <summary>Keys that name a secret end with what they hold (AdminPassword, WebhookToken, SigningKey), unlike AccessTokenSeconds.</summary>
    [GeneratedRegex("(password|secret|token|key|credentials?|passphrase)$", RegexOptions.IgnoreCase)]
    private static partial Regex SecretKey();

    [GeneratedRegex("(File|Path|Dir)$", RegexOptions.IgnoreCase)]
    private static partial Regex PathKey();
}
