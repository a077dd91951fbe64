using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using Limen.Data;
using Limen.Features.Audit;
using Limen.Features.Events;
using Limen.Features.Hosts;
using Limen.Features.Vms;
using Limen.Hosting;
using Limen.Libvirt;
using Limen.Web;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Limen.Features.RemoteConsole;

public sealed record ConsoleTicketResponse(string Ticket, string WsUrl, DateTimeOffset ExpiresAt);

public sealed record ConsoleSessionResponse(
    Guid Id, Guid UserId, Guid VmId, DateTimeOffset StartedAt, DateTimeOffset LastActivityAt,
    DateTimeOffset? EndedAt, string? EndReason, string? ClientIp, string? UserAgent, bool Active);

public sealed record ConsoleSessionQuery(
    [property: FromQuery(Name = "active")] bool? Active,
    [property: FromQuery(Name = "user_id")] Guid? UserId,
    [property: FromQuery(Name = "vm_id")] Guid? VmId);

/// <summary>Problem types only the console uses.</summary>
public static class ConsoleProblems
{
    public const string UpgradeRequired = "urn:limen:problem:upgrade-required";
    public const string Unavailable = "urn:limen:problem:console-unavailable";
    public const string SessionLimit = "urn:limen:problem:console-session-limit";
    public const string TicketRejected = "urn:limen:problem:console-ticket-rejected";
}

public static class ConsoleEndpoints
{
    /// <summary>A peer that answers neither data nor pings for this long is gone.</summary>
    private static readonly TimeSpan KeepAlive = TimeSpan.FromSeconds(15);
    private static readonly TimeSpan VncConnectTimeout = TimeSpan.FromSeconds(5);

    public static IEndpointRouteBuilder MapConsole(this IEndpointRouteBuilder routes)
    {
        routes.MapPost("/api/vms/{id:guid}/console", IssueTicket).WithTags("Console");
        // The ticket is the credential here: browsers cannot put an Authorization header on a WebSocket.
        routes.Map("/vnc/{id:guid}", Connect).AllowAnonymous().ExcludeFromDescription();

        var sessions = routes.MapGroup("/api/console/sessions").WithTags("Console");
        sessions.MapGet("/", ListSessions);
        sessions.MapDelete("/{sid:guid}", TerminateSession);

        // The console page is in the web UI: Ui/Pages/Vms/VmConsole.razor.
        routes.MapGet("/novnc/{**path}", NoVncFiles.Get).AllowAnonymous().ExcludeFromDescription();
        return routes;
    }

    private static async Task<Results<Ok<ConsoleTicketResponse>, ProblemHttpResult>> IssueTicket(
        Guid id, HttpContext http, VmService vms, HostRegistry hosts, ConsoleTickets tickets, ConsoleSessions sessions,
        IOptions<ConsoleOptions> options, AuditTrail audit, CancellationToken cancellationToken)
    {
        var vm = await vms.FindAsync(id, http.User, cancellationToken);
        if (vm is null)
        {
            return Problems.NotFoundProblem("The VM");
        }

        // libvirt, not the row: the row may lag a guest that just powered itself off.
        var state = await Task.Run(() => hosts.Of(vm).Hypervisor.Run(c => VmService.ReadState(c, vm.Id)), cancellationToken);
        var vmState = state is { } s ? VmStates.FromDomain(s) : VmStates.Missing;
        if (vmState is not (VmStates.Running or VmStates.Paused))
        {
            await audit.RecordAsync(new AuditEvent("console.ticket.issue", AuditResults.Failure, "vm", id.ToString(), "invalid_state", new { state = vmState }), cancellationToken);
            return Problems.Create(409, Problems.InvalidState, "Invalid state", $"The VM is {vmState}; a console needs it running.",
                new Dictionary<string, object?> { ["state"] = vmState });
        }

        var userId = http.User.GetUserId();
        var open = await sessions.CountOpenAsync(userId, cancellationToken);
        if (open >= options.Value.MaxSessionsPerUser)
        {
            await audit.RecordAsync(new AuditEvent("console.ticket.issue", AuditResults.Failure, "vm", id.ToString(), "session_limit", new { open }), cancellationToken);
            return SessionLimitProblem(options.Value.MaxSessionsPerUser);
        }

        var issued = await tickets.IssueAsync(userId, vm.Id, cancellationToken);
        await audit.RecordAsync(new AuditEvent("console.ticket.issue", AuditResults.Success, "vm", id.ToString(),
            Details: new { expires_at = issued.ExpiresAt }), cancellationToken);
        var request = http.Request;
        var wsUrl = $"{(request.IsHttps ? "wss" : "ws")}://{request.Host}{request.PathBase}/vnc/{vm.Id}?ticket={issued.Ticket}";
        return TypedResults.Ok(new ConsoleTicketResponse(issued.Ticket, wsUrl, issued.ExpiresAt));
    }

    /// <summary>
    /// The console WebSocket. Everything that can refuse it — origin, ticket, VM state, session
    /// limit — does so with an HTTP problem before the upgrade, and before a byte goes to VNC.
    /// </summary>
    private static async Task<IResult> Connect(
        Guid id, [FromQuery] string? ticket, HttpContext http, OriginPolicy origins, ConsoleTickets tickets, ConsoleSessions sessions,
        ConsoleMetrics metrics, HostRegistry hosts, IDbContextFactory<LimenDbContext> dbFactory,
        AuditTrail audit, TimeProvider clock, IOptions<ConsoleOptions> options)
    {
        var cancellationToken = http.RequestAborted;
        if (!origins.Allows(http.Request))
        {
            return await RefuseAsync(http, audit, metrics, id, "origin", null,
                Problems.Create(403, Problems.Forbidden, "Forbidden", "This origin may not open consoles (Limen:Console:AllowedOrigins)."));
        }

        if (!http.WebSockets.IsWebSocketRequest)
        {
            http.Response.Headers.Upgrade = "websocket";
            return await RefuseAsync(http, audit, metrics, id, "not_websocket", null,
                Problems.Create(426, ConsoleProblems.UpgradeRequired, "Upgrade required", "/vnc/{id} speaks WebSocket only."));
        }

        var check = await tickets.ConsumeAsync(ticket, id, cancellationToken);
        User? user = null;
        Guid? hostId = null;
        if (check.Accepted)
        {
            await using var db = await dbFactory.CreateDbContextAsync(cancellationToken);
            user = await db.Users.AsNoTracking().FirstOrDefaultAsync(u => u.Id == check.UserId, cancellationToken);
            hostId = user is { Disabled: false }
                ? await db.Vms.Where(v => v.Id == id && (v.OwnerId == user.Id || user.Role == Roles.Admin)).Select(v => (Guid?)v.HostId).FirstOrDefaultAsync(cancellationToken)
                : null;
            var allowed = hostId is not null;
            // A client that also signs in (an API client can send a header; browsers cannot) must be the ticket's user.
            check = http.User.FindUserId() is { } caller && caller != check.UserId ? check with { RejectedBecause = TicketRejections.WrongUser }
                : !allowed ? check with { RejectedBecause = TicketRejections.NotAllowed }
                : check;
        }

        if (!check.Accepted)
        {
            metrics.TicketsRejected.WithLabels(check.RejectedBecause!).Inc();
            await audit.RecordAsync(new AuditEvent("console.connect", AuditResults.Denied, "vm", id.ToString(), check.RejectedBecause,
                check.UserId == default ? null : new { ticket_user_id = check.UserId, ticket_vm_id = check.VmId }), CancellationToken.None);
            return Problems.Create(401, ConsoleProblems.TicketRejected, "Unauthorized",
                "The console ticket is missing, unknown, used, expired or not valid here; ask POST /api/vms/{id}/console for a new one.",
                new Dictionary<string, object?> { ["reason"] = check.RejectedBecause });
        }

        // The VM's own host: its libvirt knows the VNC port, its console address is where that port is reached.
        var host = hosts.Get(hostId!.Value);
        var target = await Task.Run(() => host.Hypervisor.Run(c =>
        {
            using var domain = c.LookupDomainByUuid(id);
            return domain is { IsActive: true } ? VncEndpoint.FromDomainXml(domain.GetXmlDesc(), host.ConsoleAddress) : null;
        }), cancellationToken);
        if (target is null)
        {
            return await RefuseAsync(http, audit, metrics, id, "vm_not_running", user,
                Problems.Create(409, Problems.InvalidState, "Invalid state", "The VM is not running or has no VNC display."));
        }

        // Checked again, atomically, when the session starts; asking first spares the VNC server a connection.
        if (await sessions.CountOpenAsync(user!.Id, cancellationToken) >= options.Value.MaxSessionsPerUser)
        {
            return await RefuseAsync(http, audit, metrics, id, "session_limit", user, SessionLimitProblem(options.Value.MaxSessionsPerUser));
        }

        var vnc = await ConnectVncAsync(target, cancellationToken);
        if (vnc is null)
        {
            return await RefuseAsync(http, audit, metrics, id, "vnc_unavailable", user,
                Problems.Create(502, ConsoleProblems.Unavailable, "Console unavailable", "The VM's VNC server did not accept a connection."));
        }

        var session = await sessions.TryStartAsync(user, id, http.Connection.RemoteIpAddress?.ToString(), http.Request.Headers.UserAgent.ToString(), cancellationToken);
        if (session is null)
        {
            vnc.Dispose();
            return await RefuseAsync(http, audit, metrics, id, "session_limit", user, SessionLimitProblem(options.Value.MaxSessionsPerUser));
        }

        var relayReason = ConsoleEndReasons.ClientClosed;
        try
        {
            using var client = await http.WebSockets.AcceptWebSocketAsync(new WebSocketAcceptContext
            {
                // noVNC and websockify clients offer "binary"; RFB bytes are never text.
                SubProtocol = http.WebSockets.WebSocketRequestedProtocols.Contains("binary") ? "binary" : null,
                KeepAliveInterval = KeepAlive,
                KeepAliveTimeout = KeepAlive * 2,
            });
            var relay = new ConsoleRelay(client, vnc, session, clock, metrics);
            relayReason = await relay.RunAsync(() => ExplainVncCloseAsync(host.Hypervisor, dbFactory, id));
        }
        finally
        {
            vnc.Dispose();
            await sessions.CompleteAsync(session, user, relayReason);
        }

        return Results.Empty;
    }

    private static async Task<Results<Ok<PagedList<ConsoleSessionResponse>>, ProblemHttpResult>> ListSessions(
        [AsParameters] ConsoleSessionQuery query, [AsParameters] PageRequest page, HttpContext http, ConsoleSessions sessions,
        CancellationToken cancellationToken) =>
        (await sessions.ListAsync(query, page, http.User, cancellationToken)).ToResult(TypedResults.Ok);

    /// <summary>204 once the relay confirmed the end, 202 when it did not within the wait (<see cref="ConsoleSessions.TerminateAsync"/>).</summary>
    private static async Task<Results<NoContent, Accepted, ProblemHttpResult>> TerminateSession(
        Guid sid, HttpContext http, ConsoleSessions sessions, CancellationToken cancellationToken)
    {
        var outcome = await sessions.TerminateAsync(sid, http.User, cancellationToken);
        if (outcome.Failure is { } failure)
        {
            return failure.ToProblem();
        }

        return outcome.Value ? TypedResults.NoContent() : TypedResults.Accepted((string?)null);
    }

    private static async Task<IResult> RefuseAsync(HttpContext http, AuditTrail audit, ConsoleMetrics metrics, Guid vmId, string reason, User? user, IResult problem)
    {
        metrics.ConnectsRejected.WithLabels(reason).Inc();
        await audit.RecordAsync(new AuditEvent("console.connect", AuditResults.Denied, "vm", vmId.ToString(), reason,
            UserId: user?.Id, Username: user?.Username), CancellationToken.None);
        return problem;
    }

    private static ProblemHttpResult SessionLimitProblem(int limit) =>
        Problems.Create(429, ConsoleProblems.SessionLimit, "Too many console sessions",
            $"You have {limit} console sessions open, the most allowed; close one first.",
            new Dictionary<string, object?> { ["limit"] = limit });

    private static async Task<Socket?> ConnectVncAsync(EndPoint target, CancellationToken cancellationToken)
    {
        var socket = target is UnixDomainSocketEndPoint
            ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
            : new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(VncConnectTimeout);
        try
        {
            await socket.ConnectAsync(target, timeout.Token);
            return socket;
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            socket.Dispose();
            return null;
        }
    }

    /// <summary>
    /// Why the VNC socket closed: QEMU closes it when the guest is powered off or its domain
    /// destroyed. A delete (from any server) marks the row before it destroys the domain, so the row
    /// tells a delete from a stop; libvirt can learn of QEMU's exit a moment after the socket closes,
    /// so ask it a few times. A migration marks the row before the source's QEMU goes away.
    /// </summary>
    private static async Task<string> ExplainVncCloseAsync(Hypervisor hypervisor, IDbContextFactory<LimenDbContext> dbFactory, Guid vmId)
    {
        await using (var db = await dbFactory.CreateDbContextAsync())
        {
            var state = await db.Vms.Where(v => v.Id == vmId).Select(v => v.State).FirstOrDefaultAsync();
            if (state is null or VmStates.Deleting)
            {
                return ConsoleEndReasons.VmDeleted;
            }

            if (state == VmStates.Migrating)
            {
                // The source's QEMU closes its display at the switch-over; the VM goes on on its new host.
                return ConsoleEndReasons.VmMigrated;
            }
        }

        for (var attempt = 0; attempt < 10; attempt++)
        {
            try
            {
                var state = await Task.Run(() => hypervisor.Run(c => VmService.ReadState(c, vmId)));
                if (state is null)
                {
                    return ConsoleEndReasons.VmDeleted;
                }

                if (state is DomainState.Shutoff or DomainState.Crashed)
                {
                    return ConsoleEndReasons.VmStopped;
                }
            }
            catch (HypervisorUnavailableException)
            {
                return ConsoleEndReasons.VncClosed;
            }

            await Task.Delay(200);
        }

        return ConsoleEndReasons.VncClosed;
    }
}
