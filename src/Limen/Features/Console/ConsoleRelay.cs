using System.Net.Sockets;
using System.Net.WebSockets;

namespace Limen.Features.RemoteConsole;

/// <summary>
/// Relays one console: WebSocket binary frames to the VNC socket and VNC bytes back as binary
/// frames, unchanged (RFB over WebSocket, as websockify does, so noVNC or any RFB client works).
/// Each direction owns one fixed buffer and awaits every write before it reads again, so a side that
/// stops reading stalls the other side's reads instead of growing memory: in flight per session are
/// at most two buffers plus the kernel's socket buffers.
/// </summary>
public sealed class ConsoleRelay(WebSocket client, Socket vnc, LiveConsoleSession session, TimeProvider clock, ConsoleMetrics metrics)
{
    public const int BufferBytes = 128 * 1024;

    /// <summary>How long a closing side gets to finish its part of the close before it is cut off.</summary>
    private static readonly TimeSpan CloseGrace = TimeSpan.FromSeconds(2);

    private bool clientSentText;

    /// <summary>
    /// Relays until either side goes or the session is ended from outside, then closes both.
    /// Returns the relay's own reason (client_closed or vnc_closed); <paramref name="explainVncClose"/>
    /// refines a closed VNC socket (the VM stopped or was deleted) before the client is told.
    /// </summary>
    public async Task<string> RunAsync(Func<Task<string>> explainVncClose)
    {
        using var stopVncReads = new CancellationTokenSource();
        await using var vncStream = new NetworkStream(vnc, ownsSocket: true);
        var up = ClientToVncAsync(vncStream);
        var down = VncToClientAsync(vncStream, stopVncReads.Token);
        var ended = Task.Delay(Timeout.Infinite, session.Ending).ContinueWith(_ => "", TaskScheduler.Default);

        var first = await Task.WhenAny(up, down, ended);
        var reason = await first;
        if (reason == ConsoleEndReasons.VncClosed)
        {
            reason = await explainVncClose();
        }

        session.TryEnd(reason.Length > 0 ? reason : ConsoleEndReasons.ClientClosed);

        // 1. No frame may be in flight to the client when the close frame goes out.
        await stopVncReads.CancelAsync();
        if (!await FinishesWithin(down))
        {
            client.Abort();     // stuck sending to a client that does not read
            await down;
        }

        // 2. The closing handshake, unless the client is already gone.
        if (client.State is WebSocketState.Open or WebSocketState.CloseReceived)
        {
            using var timeout = new CancellationTokenSource(CloseGrace);
            try
            {
                await client.CloseOutputAsync(CloseStatus(session.EndReason!), session.EndReason, timeout.Token);
            }
            catch (Exception e) when (e is WebSocketException or OperationCanceledException or IOException)
            {
                client.Abort();
            }
        }

        // 3. The client answers with its close frame, which ends the receiving side.
        if (!await FinishesWithin(up))
        {
            client.Abort();
            await up;
        }

        return reason.Length > 0 ? reason : ConsoleEndReasons.ClientClosed;
    }

    private async Task<string> ClientToVncAsync(NetworkStream vncStream)
    {
        var buffer = new byte[BufferBytes];
        while (true)
        {
            ValueWebSocketReceiveResult received;
            try
            {
                received = await client.ReceiveAsync(buffer.AsMemory(), CancellationToken.None);
            }
            catch (Exception e) when (e is WebSocketException or OperationCanceledException or IOException)
            {
                return ConsoleEndReasons.ClientClosed;
            }

            if (received.MessageType == WebSocketMessageType.Close)
            {
                return ConsoleEndReasons.ClientClosed;
            }

            if (received.MessageType == WebSocketMessageType.Text)
            {
                // RFB is binary; a text frame is not ours to translate (websockify's old base64 mode).
                clientSentText = true;
                return ConsoleEndReasons.ClientClosed;
            }

            session.Touch(clock.GetUtcNow());
            try
            {
                await vncStream.WriteAsync(buffer.AsMemory(0, received.Count));
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException)
            {
                return ConsoleEndReasons.VncClosed;
            }

            metrics.RelayedToVnc.Inc(received.Count);
        }
    }

    private async Task<string> VncToClientAsync(NetworkStream vncStream, CancellationToken stop)
    {
        var buffer = new byte[BufferBytes];
        while (true)
        {
            int read;
            try
            {
                read = await vncStream.ReadAsync(buffer, stop);
            }
            catch (OperationCanceledException)
            {
                return "";
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException)
            {
                return ConsoleEndReasons.VncClosed;
            }

            if (read == 0)
            {
                return ConsoleEndReasons.VncClosed;
            }

            // Take what else has already arrived into the same frame: each WebSocket message costs a
            // trip through Kestrel's output, and a framebuffer update comes in many TCP segments.
            // Only bytes already here, so a lone small message is never held back.
            while (read < buffer.Length && vnc.Available > 0)
            {
                read += vnc.Receive(buffer.AsSpan(read), SocketFlags.None);
            }

            try
            {
                await client.SendAsync(buffer.AsMemory(0, read), WebSocketMessageType.Binary, endOfMessage: true, CancellationToken.None);
            }
            catch (Exception e) when (e is WebSocketException or OperationCanceledException or IOException or ObjectDisposedException)
            {
                return ConsoleEndReasons.ClientClosed;
            }

            metrics.RelayedToClient.Inc(read);
        }
    }

    private WebSocketCloseStatus CloseStatus(string reason) => reason switch
    {
        _ when clientSentText => WebSocketCloseStatus.InvalidMessageType,
        ConsoleEndReasons.ClientClosed or ConsoleEndReasons.VncClosed or ConsoleEndReasons.VmStopped or ConsoleEndReasons.VmDeleted
            or ConsoleEndReasons.VmMigrated => WebSocketCloseStatus.NormalClosure,
        ConsoleEndReasons.ServerRestart => WebSocketCloseStatus.EndpointUnavailable,
        // idle, duration, disabled user, admin: the server's policy ended it, and the page should not reconnect.
        _ => WebSocketCloseStatus.PolicyViolation,
    };

    private static async Task<bool> FinishesWithin(Task task)
    {
        await Task.WhenAny(task, Task.Delay(CloseGrace));
        return task.IsCompleted;
    }
}
