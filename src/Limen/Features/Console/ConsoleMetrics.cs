using Limen.Features.Metrics;
using Prometheus;

namespace Limen.Features.RemoteConsole;

/// <summary>
/// The console's collectors, on Limen's own registry. The seed's <c>console_active_sessions</c>
/// gauge is declared in <see cref="LimenMetrics"/>; only <see cref="ConsoleSessions"/> moves it.
/// Every label here has a fixed set of values.
/// </summary>
public sealed class ConsoleMetrics
{
    public ConsoleMetrics(LimenMetrics metrics)
    {
        var factory = Prometheus.Metrics.WithCustomRegistry(metrics.Registry);
        ActiveSessions = metrics.ConsoleActiveSessions;
        SessionsStarted = factory.CreateCounter("console_sessions_started_total", "Console sessions started.");
        SessionsEnded = factory.CreateCounter("console_sessions_ended_total",
            "Console sessions ended, by reason (see docs/api.md#console).", ["reason"]);
        TicketsRejected = factory.CreateCounter("console_ticket_rejected_total",
            "Console connects refused for their ticket, by reason (missing, unknown, reused, expired, wrong_vm, wrong_user, not_allowed).", ["reason"]);
        ConnectsRejected = factory.CreateCounter("console_connect_rejected_total",
            "Console connects refused for anything but the ticket, by reason (origin, not_websocket, session_limit, vm_not_running, vnc_unavailable).", ["reason"]);
        RelayedBytes = factory.CreateCounter("console_relayed_bytes_total",
            "Bytes relayed between browsers and VNC servers, by direction (to_vnc, to_client).", ["direction"]);
        // Looked up once: WithLabels on every relayed frame costs an array and a dictionary lookup.
        RelayedToVnc = RelayedBytes.WithLabels("to_vnc");
        RelayedToClient = RelayedBytes.WithLabels("to_client");
    }

    public Gauge ActiveSessions { get; }
    public Counter SessionsStarted { get; }
    public Counter SessionsEnded { get; }
    public Counter TicketsRejected { get; }
    public Counter ConnectsRejected { get; }
    public Counter RelayedBytes { get; }
    public Counter.Child RelayedToVnc { get; }
    public Counter.Child RelayedToClient { get; }
}
