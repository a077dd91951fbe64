using System.Text.Json;
using Limen.Data;
using Limen.Features.Events;
using Limen.Hosting;

namespace Limen.Features.RemoteConsole;

/// <summary>
/// Ends a session this server relays when an admin or the session's user asked another server to
/// terminate it (console.session.terminate_requested names the relaying server). The relay then
/// closes both sides and records the request's reason, as for a terminate asked here.
/// </summary>
public sealed class ConsoleTerminateConsumer(ConsoleSessions sessions, ServerIdentity server) : IEventConsumer
{
    public IReadOnlyCollection<string> Types { get; } = [EventTypes.ConsoleSessionTerminateRequested];

    public Task ConsumeAsync(LimenEvent committed, CancellationToken cancellationToken)
    {
        var request = JsonSerializer.Deserialize<ConsoleTerminateRequest>(committed.Data, EventOutlet.DataJson);
        if (request is not null && request.ServerId == server.Id)
        {
            sessions.End(request.SessionId, request.Reason ?? ConsoleEndReasons.AdminTerminated);
        }

        return Task.CompletedTask;
    }
}
