using System.Buffers.Binary;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text.Json;
using System.Xml.Linq;
using Limen.Tests.Infrastructure;

// Not Limen.Tests.Console: that namespace would shadow System.Console in all of Limen.Tests.*.
namespace Limen.Tests.RemoteConsole;

/// <summary>The real clock plus an offset the test moves forward: timers and waits stay real, "now" jumps.</summary>
public sealed class ShiftableClock : TimeProvider
{
    private long offsetTicks;

    public override DateTimeOffset GetUtcNow() => base.GetUtcNow().AddTicks(Interlocked.Read(ref offsetTicks));

    public void Advance(TimeSpan by) => Interlocked.Add(ref offsetTicks, by.Ticks);
}

/// <summary>
/// A stand-in VNC server on loopback for tests on libvirt's test driver (which runs no QEMU): it
/// greets like RFB 3.8 and echoes what it gets, or floods, and counts connections and bytes, so a
/// test can tell whether anything reached "VNC" at all.
/// </summary>
public sealed class FakeVncServer : IAsyncDisposable
{
    public const string Greeting = "RFB 003.008\n";

    private readonly TcpListener listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource stop = new();
    private readonly List<TcpClient> clients = [];
    private readonly bool flood;
    private readonly Task accepting;
    private int connections;
    private long bytesReceived;
    private long bytesSent;

    public FakeVncServer(bool flood = false)
    {
        this.flood = flood;
        listener.Start();
        accepting = AcceptAsync();
    }

    public int Port => ((IPEndPoint)listener.LocalEndpoint).Port;
    public int Connections => Volatile.Read(ref connections);
    public long BytesReceived => Interlocked.Read(ref bytesReceived);
    public long BytesSent => Interlocked.Read(ref bytesSent);

    /// <summary>Closes every connection, as QEMU does when its guest goes away.</summary>
    public void DropAll()
    {
        lock (clients)
        {
            clients.ForEach(c => c.Dispose());
            clients.Clear();
        }
    }

    private async Task AcceptAsync()
    {
        while (!stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await listener.AcceptTcpClientAsync(stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            Interlocked.Increment(ref connections);
            lock (clients)
            {
                clients.Add(client);
            }

            _ = ServeAsync(client);
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        try
        {
            var stream = client.GetStream();
            await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes(Greeting), stop.Token);
            if (flood)
            {
                var chunk = new byte[64 * 1024];
                Array.Fill(chunk, (byte)0x5a);
                while (true)
                {
                    await stream.WriteAsync(chunk, stop.Token);
                    Interlocked.Add(ref bytesSent, chunk.Length);
                }
            }

            var buffer = new byte[16 * 1024];
            int read;
            while ((read = await stream.ReadAsync(buffer, stop.Token)) > 0)
            {
                Interlocked.Add(ref bytesReceived, read);
                await stream.WriteAsync(buffer.AsMemory(0, read), stop.Token);
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or SocketException)
        {
            // The other side went away; that is what these tests provoke.
        }
    }

    public async ValueTask DisposeAsync()
    {
        await stop.CancelAsync();
        listener.Stop();
        DropAll();
        await accepting;
        stop.Dispose();
    }
}

/// <summary>What ServerInit said about a VNC display.</summary>
public sealed record RfbDisplay(ushort Width, ushort Height, byte BitsPerPixel, string Name);

public static class ConsoleKit
{
    /// <summary>
    /// A running VM on libvirt's test driver whose domain says its VNC server is <paramref name="vncPort"/>
    /// on loopback (where a <see cref="FakeVncServer"/> listens), created and started through the API.
    /// </summary>
    public static async Task<Guid> CreateWiredVmAsync(LimenTestServer server, HttpClient owner, Guid imageId, string name, int vncPort)
    {
        var id = (await VmTestKit.CreateVmAsync(owner, imageId, name)).GetProperty("id").GetGuid();
        VmTestKit.Libvirt(server, c =>
        {
            string xml;
            using (var domain = c.LookupDomainByUuid(id)!)
            {
                xml = domain.GetXmlDesc();
            }

            var doc = XDocument.Parse(xml);
            var graphics = doc.Descendants("graphics").Single();
            graphics.SetAttributeValue("port", vncPort);
            graphics.SetAttributeValue("autoport", "no");
            graphics.SetAttributeValue("listen", "127.0.0.1");
            c.DefineDomain(doc.ToString()).Dispose();
            return true;
        });
        var started = await owner.PostAsync($"/api/vms/{id}/actions/start", null);
        Assert.True(started.IsSuccessStatusCode, await started.Content.ReadAsStringAsync());
        return id;
    }

    public static async Task<(string Ticket, Uri WsUrl)> TicketAsync(HttpClient client, Guid vmId)
    {
        var response = await client.PostAsync($"/api/vms/{vmId}/console", null);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        var json = JsonDocument.Parse(body).RootElement;
        return (json.GetProperty("ticket").GetString()!, new Uri(json.GetProperty("ws_url").GetString()!));
    }

    public static Uri VncUrl(LimenTestServer server, Guid vmId, string? ticket) =>
        new($"ws://{server.BaseAddress.Authority}/vnc/{vmId}" + (ticket is null ? "" : "?ticket=" + Uri.EscapeDataString(ticket)));

    public static async Task<ClientWebSocket> OpenAsync(Uri url, string? origin = null, string? bearer = null)
    {
        var socket = new ClientWebSocket();
        socket.Options.AddSubProtocol("binary");
        if (origin is not null)
        {
            socket.Options.SetRequestHeader("Origin", origin);
        }

        if (bearer is not null)
        {
            socket.Options.SetRequestHeader("Authorization", "Bearer " + bearer);
        }

        await socket.ConnectAsync(url, CancellationToken.None);
        return socket;
    }

    /// <summary>A WebSocket handshake that the server refuses, as plain HTTP, so the problem body can be read.</summary>
    public static async Task<HttpResponseMessage> RefusedUpgradeAsync(LimenTestServer server, Guid vmId, string? ticket, string? origin = null, string? bearer = null)
    {
        using var client = server.Client(bearer);
        var path = $"/vnc/{vmId}" + (ticket is null ? "" : "?ticket=" + Uri.EscapeDataString(ticket));
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Connection.Add("Upgrade");
        request.Headers.Upgrade.Add(new System.Net.Http.Headers.ProductHeaderValue("websocket"));
        request.Headers.Add("Sec-WebSocket-Version", "13");
        request.Headers.Add("Sec-WebSocket-Key", Convert.ToBase64String(Guid.NewGuid().ToByteArray()));
        if (origin is not null)
        {
            request.Headers.Add("Origin", origin);
        }

        var response = await client.SendAsync(request);
        Assert.NotEqual(HttpStatusCode.SwitchingProtocols, response.StatusCode);
        await response.Content.LoadIntoBufferAsync();
        return response;
    }

    /// <summary>Reads exactly <paramref name="count"/> relayed bytes, across as many frames as they come in.</summary>
    public static async Task<byte[]> ReadExactAsync(WebSocket socket, int count, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(30));
        var result = new byte[count];
        var filled = 0;
        while (filled < count)
        {
            var received = await socket.ReceiveAsync(result.AsMemory(filled), cts.Token);
            Assert.True(received.MessageType == WebSocketMessageType.Binary, $"expected binary data, got {received.MessageType}");
            filled += received.Count;
        }

        return result;
    }

    /// <summary>Waits for the server's close frame and returns its status and reason.</summary>
    public static async Task<(WebSocketCloseStatus? Status, string? Reason)> ReadCloseAsync(WebSocket socket, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(30));
        var buffer = new byte[64 * 1024];
        while (true)
        {
            var received = await socket.ReceiveAsync(buffer.AsMemory(), cts.Token);
            if (received.MessageType == WebSocketMessageType.Close)
            {
                return (socket.CloseStatus, socket.CloseStatusDescription);
            }
        }
    }

    /// <summary>
    /// The client side of RFB 3.8 (RFC 6143 §7.1-7.3) through the relay, with security type None:
    /// version, security, SecurityResult, ClientInit (shared), ServerInit; then SetEncodings [Raw].
    /// </summary>
    public static async Task<RfbDisplay> RfbHandshakeAsync(WebSocket socket)
    {
        Assert.Equal("RFB 003.008\n", System.Text.Encoding.ASCII.GetString(await ReadExactAsync(socket, 12)));
        await SendAsync(socket, System.Text.Encoding.ASCII.GetBytes("RFB 003.008\n"));
        var typeCount = (await ReadExactAsync(socket, 1))[0];
        Assert.True(typeCount > 0, "the server refused the connection");
        Assert.Contains((byte)1, await ReadExactAsync(socket, typeCount));
        await SendAsync(socket, [1]);
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32BigEndian(await ReadExactAsync(socket, 4)));
        await SendAsync(socket, [1]);   // shared
        var init = await ReadExactAsync(socket, 24);
        var name = System.Text.Encoding.UTF8.GetString(await ReadExactAsync(socket, (int)BinaryPrimitives.ReadUInt32BigEndian(init.AsSpan(20))));
        await SendAsync(socket, [2, 0, 0, 1, 0, 0, 0, 0]);
        return new RfbDisplay(BinaryPrimitives.ReadUInt16BigEndian(init.AsSpan(0)), BinaryPrimitives.ReadUInt16BigEndian(init.AsSpan(2)), init[4], name);
    }

    /// <summary>
    /// A non-incremental FramebufferUpdateRequest for a rectangle, and the whole FramebufferUpdate
    /// that answers it (Raw rectangles): how many pixels came, and how many of them are not black.
    /// </summary>
    public static async Task<(long Pixels, long Lit)> RequestFramebufferAsync(WebSocket socket, RfbDisplay display, ushort width, ushort height)
    {
        var request = new byte[10];
        request[0] = 3;
        BinaryPrimitives.WriteUInt16BigEndian(request.AsSpan(6), width);
        BinaryPrimitives.WriteUInt16BigEndian(request.AsSpan(8), height);
        await SendAsync(socket, request);
        var header = await ReadExactAsync(socket, 4);
        Assert.Equal(0, header[0]);     // FramebufferUpdate
        var bytesPerPixel = display.BitsPerPixel / 8;
        long pixels = 0, lit = 0;
        for (var rect = BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(2)); rect > 0; rect--)
        {
            var r = await ReadExactAsync(socket, 12);
            Assert.Equal(0, BinaryPrimitives.ReadInt32BigEndian(r.AsSpan(8)));   // Raw
            var data = await ReadExactAsync(socket, BinaryPrimitives.ReadUInt16BigEndian(r.AsSpan(4)) * BinaryPrimitives.ReadUInt16BigEndian(r.AsSpan(6)) * bytesPerPixel);
            pixels += data.Length / bytesPerPixel;
            lit += data.Chunk(bytesPerPixel).Count(p => p.Any(b => b != 0));
        }

        return (pixels, lit);
    }

    private static Task SendAsync(WebSocket socket, byte[] bytes) =>
        socket.SendAsync(bytes, WebSocketMessageType.Binary, true, CancellationToken.None);

    public static async Task<JsonElement> SessionAsync(HttpClient admin, Guid vmId)
    {
        var list = await ProblemAssert.Json(await admin.GetAsync($"/api/console/sessions?vm_id={vmId}"));
        return list.GetProperty("items").EnumerateArray().First();
    }

    public static async Task WaitForAsync(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            await Task.Delay(100);
        }
    }

    public static async Task<double> GaugeAsync(LimenTestServer server) =>
        ProblemAssert.Sample(await server.MetricsAsync(), "console_active_sessions");
}
