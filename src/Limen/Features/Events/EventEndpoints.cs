using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using Limen.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace Limen.Features.Events;

/// <summary>
/// GET /api/events: the event stream as Server-Sent Events (docs/api.md, "Events"). Each caller gets
/// what it may see; <c>Last-Event-ID</c> (or <c>last_event_id</c>) resumes from the table without
/// gap or duplicate; without one the stream is live from the moment the headers arrive.
/// </summary>
public static class EventEndpoints
{
    public const string LastEventIdHeader = "Last-Event-ID";

    /// <summary>Rows per read while a resuming client catches up.</summary>
    public const int CatchUpPage = 500;

    /// <summary>How long a client cut off for overflow has to take the final event before its connection is dropped.</summary>
    public static readonly TimeSpan OverflowGrace = TimeSpan.FromSeconds(10);

    public static IEndpointRouteBuilder MapEvents(this IEndpointRouteBuilder routes)
    {
        routes.MapGet("/api/events", Stream).WithTags("Events");
        return routes;
    }

    private static async Task<Results<EmptyHttpResult, ProblemHttpResult>> Stream(
        [FromQuery(Name = "last_event_id")] long? lastEventId, HttpContext http, EventHub hub, EventLog log,
        IHostApplicationLifetime lifetime, TimeProvider clock)
    {
        // The header is what EventSource sends on a reconnect, newer than the query it was opened with.
        long? after = lastEventId;
        if (http.Request.Headers[LastEventIdHeader] is [{ Length: > 0 } header])
        {
            if (!long.TryParse(header, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed))
            {
                return Problems.Invalid(LastEventIdHeader, "Last-Event-ID must be an event id: a whole number, 0 or more.");
            }

            after = parsed;
        }
        else if (after < 0)
        {
            return Problems.Invalid("last_event_id", "last_event_id must be an event id: a whole number, 0 or more.");
        }

        // The stream ends when the access token does (or the server stops): the client reconnects
        // with a fresh token and its Last-Event-ID, and a disabled account stops receiving.
        using var ends = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted, lifetime.ApplicationStopping);
        if (http.Features.Get<IAuthenticateResultFeature>()?.AuthenticateResult?.Properties?.ExpiresUtc is { } expires)
        {
            ends.CancelAfter(TimeSpan.FromTicks(Math.Max(0, (expires - clock.GetUtcNow()).Ticks)));
        }

        var stream = new ClientStream(http, hub, log, http.User.GetUserId(), http.User.IsAdmin(), ends.Token);
        await stream.RunAsync(after);
        return TypedResults.Empty;
    }

    /// <summary>One client's response: catch-up from the table, then the hub's live events.</summary>
    private sealed class ClientStream(HttpContext http, EventHub hub, EventLog log, Guid userId, bool admin, CancellationToken ends)
    {
        private readonly PipeWriter body = http.Response.BodyWriter;
        private long sent;

        public async Task RunAsync(long? after)
        {
            var response = http.Response;
            response.ContentType = "text/event-stream";
            response.Headers.CacheControl = "no-cache";
            // nginx and similar proxies would otherwise hold events back to fill their buffers.
            response.Headers["X-Accel-Buffering"] = "no";
            http.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
            try
            {
                EventSubscriber subscriber;
                if (after is not { } resumeAfter)
                {
                    subscriber = hub.Subscribe(userId, admin);
                    await StartAsync();
                }
                else
                {
                    var point = await log.ResumeAsync(resumeAfter, ends);
                    await StartAsync();
                    if (point.Reset is { } reason)
                    {
                        body.Write(EventFrame.Control(EventFrame.Reset, point.From, new { reason, last_event_id = resumeAfter, resume_id = point.From }));
                    }

                    sent = point.From;
                    // The backlog first, then subscribe and read once more: whatever committed in
                    // between is in that read, what commits later in the buffer (duplicates skipped).
                    await CatchUpAsync();
                    subscriber = hub.Subscribe(userId, admin);
                    await CatchUpAsync();
                }

                using (subscriber)
                {
                    await LiveAsync(subscriber);
                }
            }
            catch (Exception) when (ends.IsCancellationRequested)
            {
                // The client left (or was dropped), its token expired, or the server is stopping:
                // whatever the last write threw is part of that.
            }
        }

        /// <summary>Sends the headers now (Kestrel would wait for the first event): the client knows it is subscribed.</summary>
        private async Task StartAsync()
        {
            await http.Response.StartAsync(ends);
            await body.FlushAsync(ends);
        }

        private async Task CatchUpAsync()
        {
            while (true)
            {
                var rows = await log.ReadAsync(sent, userId, admin, CatchUpPage, ends);
                foreach (var row in rows)
                {
                    body.Write(EventFrame.Of(row).Bytes);
                    sent = row.Id;
                }

                await body.FlushAsync(ends);
                if (rows.Count < CatchUpPage)
                {
                    return;
                }
            }
        }

        private async Task LiveAsync(EventSubscriber subscriber)
        {
            // A cut-off client gets a grace period to take what is on its way and the final event;
            // one that reads nothing at all loses its connection then. (A cancelled flush would
            // break the response, so the writes themselves are never cancelled by the cut.)
            using var grace = new CancellationTokenSource();
            using var abort = grace.Token.Register(http.Abort);
            using var onCut = subscriber.CutToken.Register(() => grace.CancelAfter(OverflowGrace));
            var reader = subscriber.Reader;
            while (!subscriber.Overflowed && await reader.WaitToReadAsync(ends))
            {
                while (!subscriber.Overflowed && reader.TryRead(out var frame))
                {
                    if (ReferenceEquals(frame, EventFrame.Heartbeat) || frame.Id > sent)
                    {
                        body.Write(frame.Bytes);
                        sent = Math.Max(sent, frame.Id);
                    }
                }

                await body.FlushAsync(ends);
            }

            if (subscriber.Overflowed)
            {
                body.Write(EventFrame.Control(EventFrame.Overflow, null, new { reason = "client_too_slow", last_event_id = sent }));
                await body.FlushAsync(ends);
            }
        }
    }
}
