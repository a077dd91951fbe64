using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text.Json;
using System.Threading.Channels;

namespace Limen.Tests.Events;

/// <summary>One message of an SSE stream as a client parses it; a comment (heartbeat) has only <see cref="Comment"/>.</summary>
public sealed record SseMessage(string? Id, string? Event, string? Data, string? Comment, DateTime ReceivedAt)
{
    public long SequenceId => long.Parse(Id!, System.Globalization.CultureInfo.InvariantCulture);

    public JsonElement Json => JsonDocument.Parse(Data!).RootElement;
}

/// <summary>
/// A raw GET /api/events client: headers read, then the body parsed line by line (the SSE rules:
/// fields until a blank line) into a queue the test reads with a timeout. Dispose drops the connection.
/// </summary>
public sealed class SseClient : IAsyncDisposable
{
    private readonly HttpClient client;
    private readonly HttpResponseMessage response;
    private readonly CancellationTokenSource stop = new();
    private readonly Channel<SseMessage> messages = Channel.CreateUnbounded<SseMessage>();
    private Task reading = Task.CompletedTask;

    private SseClient(HttpClient client, HttpResponseMessage response)
    {
        this.client = client;
        this.response = response;
    }

    public HttpResponseMessage Response => response;

    /// <summary>Set when the server ended the stream (EOF or a reset connection).</summary>
    public bool Ended => reading.IsCompleted;

    /// <param name="receiveBuffer">A small socket receive buffer, for a client that is slow to read.</param>
    /// <param name="read">False: the body is left unread until <see cref="StartReading"/>.</param>
    public static async Task<SseClient> ConnectAsync(Uri baseAddress, string token, long? lastEventId = null, string? query = null,
        int? receiveBuffer = null, bool read = true)
    {
        var handler = new SocketsHttpHandler { UseCookies = false };
        if (receiveBuffer is { } size)
        {
            handler.ConnectCallback = async (context, cancellationToken) =>
            {
                var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = size, NoDelay = true };
                await socket.ConnectAsync(context.DnsEndPoint, cancellationToken);
                return new NetworkStream(socket, ownsSocket: true);
            };
        }

        var client = new HttpClient(handler) { BaseAddress = baseAddress, Timeout = Timeout.InfiniteTimeSpan };
        using var request = new HttpRequestMessage(HttpMethod.Get, "/api/events" + (query ?? ""));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        request.Headers.Accept.ParseAdd("text/event-stream");
        if (lastEventId is { } id)
        {
            request.Headers.TryAddWithoutValidation("Last-Event-ID", id.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        using var headers = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, headers.Token);
        if (!response.IsSuccessStatusCode)
        {
            Assert.Fail($"GET /api/events: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(headers.Token)}");
        }

        var sse = new SseClient(client, response);
        if (read)
        {
            sse.StartReading();
        }

        return sse;
    }

    public void StartReading() => reading = Task.Run(ReadAsync);

    /// <summary>The next message that is no comment, or null when none comes within <paramref name="timeout"/> or the stream ended.</summary>
    public async Task<SseMessage?> NextAsync(TimeSpan timeout, bool comments = false)
    {
        using var wait = new CancellationTokenSource(timeout);
        try
        {
            while (await messages.Reader.WaitToReadAsync(wait.Token))
            {
                if (messages.Reader.TryRead(out var message) && (comments || message.Comment is null))
                {
                    return message;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }

        return null;
    }

    /// <summary>The next <paramref name="count"/> events; fails when they do not all come within the timeout.</summary>
    public async Task<List<SseMessage>> TakeAsync(int count, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        var taken = new List<SseMessage>();
        while (taken.Count < count)
        {
            var left = deadline - DateTime.UtcNow;
            var next = left > TimeSpan.Zero ? await NextAsync(left) : null;
            Assert.True(next is not null, $"{taken.Count} of {count} events came within {timeout.TotalSeconds} s");
            taken.Add(next!);
        }

        return taken;
    }

    /// <summary>Everything until the stream ends; fails when it does not end within the timeout.</summary>
    public async Task<List<SseMessage>> ToEndAsync(TimeSpan timeout)
    {
        var completed = await Task.WhenAny(reading, Task.Delay(timeout));
        Assert.True(completed == reading, $"the stream did not end within {timeout.TotalSeconds} s");
        var rest = new List<SseMessage>();
        while (messages.Reader.TryRead(out var message))
        {
            if (message.Comment is null)
            {
                rest.Add(message);
            }
        }

        return rest;
    }

    private async Task ReadAsync()
    {
        try
        {
            await using var body = await response.Content.ReadAsStreamAsync(stop.Token);
            using var lines = new StreamReader(body);
            string? id = null, type = null, comment = null;
            List<string> data = [];
            while (await lines.ReadLineAsync(stop.Token) is { } line)
            {
                if (line.Length == 0)
                {
                    if (id is not null || type is not null || data.Count > 0 || comment is not null)
                    {
                        messages.Writer.TryWrite(new SseMessage(id, type, data.Count > 0 ? string.Join('\n', data) : null, comment, DateTime.UtcNow));
                    }

                    id = type = comment = null;
                    data = [];
                    continue;
                }

                var colon = line.IndexOf(':', StringComparison.Ordinal);
                var field = colon < 0 ? line : line[..colon];
                var value = colon < 0 ? "" : line[(colon + 1)..].TrimStart(' ');
                switch (field)
                {
                    case "": comment = value; break;
                    case "id": id = value; break;
                    case "event": type = value; break;
                    case "data": data.Add(value); break;
                }
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or HttpRequestException)
        {
            // The connection was dropped (by us or the server): the stream has ended.
        }
        finally
        {
            messages.Writer.TryComplete();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await stop.CancelAsync();
        response.Dispose();
        await reading;
        client.Dispose();
        stop.Dispose();
    }
}
