using Limen.Data;
using Limen.Hosting;
using Npgsql;

namespace Limen.Features.Cluster;

/// <summary>
/// The connections that carry this server's session-level advisory locks (per-VM locks,
/// leadership), apart from EF's pool: a session lock lives exactly as long as the connection that
/// took it, so it needs a connection held for the lock's lifetime, never one shared with a request.
/// Both ends watch the socket: Npgsql sends a `SELECT NULL` after <see cref="KeepaliveSeconds"/> of
/// silence (and raises StateChange when that fails), and PostgreSQL is told (per session) to probe
/// the client with TCP keepalives, so a half-open client loses its backend — and with it its locks —
/// within about <see cref="ServerReleaseSeconds"/>.
/// </summary>
public sealed class ClusterDatabase : IAsyncDisposable
{
    public const int KeepaliveSeconds = 5;

    /// <summary>Roughly how long PostgreSQL keeps the locks of a client that went silent: idle 4 s + 3 probes × 1 s, or the 8 s user timeout.</summary>
    public const int ServerReleaseSeconds = 8;

    private readonly NpgsqlDataSource pooled;
    private readonly string unpooled;

    public ClusterDatabase(IConfiguration configuration)
    {
        var builder = new NpgsqlConnectionStringBuilder(DatabaseConnection.Resolve(configuration))
        {
            // Restore's "is a server running?" check looks for this name; the leader's connection is always open.
            ApplicationName = LimenServer.DatabaseApplicationName,
            KeepAlive = KeepaliveSeconds,
            TcpKeepAlive = true,
            MaxAutoPrepare = 0,
        };
        if (!builder.ConnectionString.Contains("Timeout", StringComparison.OrdinalIgnoreCase))
        {
            builder.Timeout = 5;
        }

        // Session settings PostgreSQL applies to this backend's socket (ignored on a Unix socket).
        builder.Options = (builder.Options + " -c tcp_keepalives_idle=4 -c tcp_keepalives_interval=1 -c tcp_keepalives_count=3 -c tcp_user_timeout=8000").Trim();
        pooled = NpgsqlDataSource.Create(builder.ConnectionString);
        builder.Pooling = false;
        unpooled = builder.ConnectionString;
    }

    /// <summary>A pooled connection: the lock must be released on it before it goes back (see <see cref="Features.Vms.VmLocks"/>).</summary>
    public ValueTask<NpgsqlConnection> OpenPooledAsync(CancellationToken cancellationToken) => pooled.OpenConnectionAsync(cancellationToken);

    /// <summary>A connection of its own whose close really closes it, so PostgreSQL drops every lock it held.</summary>
    public async Task<NpgsqlConnection> OpenDedicatedAsync(CancellationToken cancellationToken)
    {
        var connection = new NpgsqlConnection(unpooled);
        try
        {
            await connection.OpenAsync(cancellationToken);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    public ValueTask DisposeAsync() => pooled.DisposeAsync();
}

public static class ClusterServiceCollection
{
    /// <summary>The lock connections and the leader election of `limen serve`.</summary>
    public static IServiceCollection AddCluster(this IServiceCollection services)
    {
        services.AddSingleton<ClusterDatabase>();
        services.AddSingleton<LeaderElection>();
        services.AddHostedService(sp => sp.GetRequiredService<LeaderElection>());
        return services;
    }
}
