using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace Limen.Tests.Infrastructure;

/// <summary>
/// A loopback TCP endpoint in front of PostgreSQL, for what sits between Limen and the database:
/// it can freeze (every socket stays open and no byte moves — a half-open link) or move to another
/// port (every relayed connection is cut and new ones go there — an HAProxy or a virtual IP
/// switching to a promoted standby). A connection whose target refuses is closed at once.
/// </summary>
public sealed class TcpRelay : IAsyncDisposable
{
    private readonly TcpListener listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource disposed = new();
    private readonly List<TcpClient> sockets = [];
    private readonly string targetHost;
    private readonly Task accepting;
    private volatile bool frozen;
    private volatile int targetPort;

    /// <param name="connectionString">The database to relay to; <see cref="ConnectionString"/> is the same through the relay.</param>
    public TcpRelay(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        targetHost = builder.Host!;
        targetPort = builder.Port;
        listener.Start();
        builder.Host = "127.0.0.1";
        builder.Port = ((IPEndPoint)listener.LocalEndpoint).Port;
        ConnectionString = builder.ConnectionString;
        accepting = AcceptAsync();
    }

    public string ConnectionString { get; }

    public void Freeze() => frozen = true;

    /// <summary>Cuts every connection relayed so far; new ones go to <paramref name="port"/> on the same host.</summary>
    public void MoveTo(int port)
    {
        targetPort = port;
        lock (sockets)
        {
            sockets.ForEach(s => s.Dispose());
            sockets.Clear();
        }
    }

    private async Task AcceptAsync()
    {
        try
        {
            while (true)
            {
                var client = await listener.AcceptTcpClientAsync(disposed.Token);
                var server = new TcpClient();
                try
                {
                    await server.ConnectAsync(targetHost, targetPort, disposed.Token);
                }
                catch (SocketException)
                {
                    // The target is down: the client sees its connection closed, as through a proxy.
                    client.Dispose();
                    server.Dispose();
                    continue;
                }

                lock (sockets)
                {
                    sockets.Add(client);
                    sockets.Add(server);
                }

                _ = PumpAsync(client, server);
                _ = PumpAsync(server, client);
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException or InvalidOperationException)
        {
            // Disposed. InvalidOperationException ("Not listening"): DisposeAsync stopped the listener
            // while this loop was between two accepts (CI saw it right after a relayed connect).
        }
    }

    private async Task PumpAsync(TcpClient from, TcpClient to)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            while (true)
            {
                var read = await from.GetStream().ReadAsync(buffer, disposed.Token);
                if (read == 0)
                {
                    break;
                }

                if (frozen)
                {
                    // Swallow it and never read again: the sockets stay open, nothing answers.
                    await Task.Delay(Timeout.Infinite, disposed.Token);
                }

                await to.GetStream().WriteAsync(buffer.AsMemory(0, read), disposed.Token);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException or InvalidOperationException)
        {
            // Frozen (the sockets stay open), cut or closed.
        }

        if (!frozen)
        {
            // One side ended: so does the other, as a proxy would.
            to.Dispose();
            from.Dispose();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await disposed.CancelAsync();
        listener.Stop();
        await accepting;
        lock (sockets)
        {
            sockets.ForEach(s => s.Dispose());
        }

        disposed.Dispose();
    }
}
