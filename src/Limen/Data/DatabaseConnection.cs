using Limen.Hosting;
using Npgsql;

namespace Limen.Data;

/// <summary>
/// Finds the PostgreSQL connection string: ConnectionStrings:Limen, else DATABASE_URL
/// (postgres://user:pass@host:port/db), else the file "database-url" that ./run.sh and ./test.sh
/// write into the state directory — so every command pointed at the same state directory reaches
/// the same database.
/// </summary>
public static class DatabaseConnection
{
    public const string StateFileName = "database-url";

    public static string Resolve(IConfiguration configuration) => PrimaryOnly(Configured(configuration));

    /// <summary>
    /// Several hosts (a primary and its standbys) without Target Session Attributes would let Npgsql
    /// take any of them, and a standby refuses every write: Limen writes, so it means the primary.
    /// </summary>
    private static string PrimaryOnly(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        if (!IsMultiHost(builder) || builder.TargetSessionAttributes is not null)
        {
            return connectionString;
        }

        builder.TargetSessionAttributes = "primary";
        return builder.ConnectionString;
    }

    public static bool IsMultiHost(NpgsqlConnectionStringBuilder builder) => builder.Host?.Contains(',', StringComparison.Ordinal) == true;

    private static string Configured(IConfiguration configuration)
    {
        var explicitString = configuration.GetConnectionString("Limen");
        if (!string.IsNullOrWhiteSpace(explicitString))
        {
            return explicitString;
        }

        var url = configuration["DATABASE_URL"];
        if (string.IsNullOrWhiteSpace(url))
        {
            var stateFile = Path.Combine(configuration.GetLimenOptions().FullStateDir, StateFileName);
            if (File.Exists(stateFile))
            {
                url = File.ReadAllText(stateFile).Trim();
            }
        }

        if (string.IsNullOrWhiteSpace(url))
        {
            throw new InvalidOperationException(
                "No database configured: set DATABASE_URL, ConnectionStrings__Limen, or run ./run.sh to create the state directory's database.");
        }

        return FromUrl(url);
    }

    /// <summary>Turns a postgres:// URL into an Npgsql connection string; other strings pass through.</summary>
    public static string FromUrl(string url)
    {
        if (!url.StartsWith("postgres://", StringComparison.Ordinal) && !url.StartsWith("postgresql://", StringComparison.Ordinal))
        {
            return url;
        }

        var uri = new Uri(url);
        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = uri.Host,
            Port = uri.IsDefaultPort || uri.Port <= 0 ? 5432 : uri.Port,
            Database = Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/')),
        };
        var userInfo = uri.UserInfo.Split(':', 2);
        if (userInfo[0].Length > 0)
        {
            builder.Username = Uri.UnescapeDataString(userInfo[0]);
        }

        if (userInfo.Length == 2)
        {
            builder.Password = Uri.UnescapeDataString(userInfo[1]);
        }

        foreach (var pair in uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = pair.Split('=', 2);
            if (parts.Length == 2 && parts[0] == "sslmode")
            {
                builder.SslMode = Enum.Parse<SslMode>(parts[1], ignoreCase: true);
            }
        }

        return builder.ConnectionString;
    }

    /// <summary>host:port/database (host:port,host:port/database for several hosts) without credentials, for log lines.</summary>
    public static string Describe(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        return IsMultiHost(builder) ? $"{builder.Host}/{builder.Database}" : $"{builder.Host}:{builder.Port}/{builder.Database}";
    }
}
