using System.Net.WebSockets;
using System.Text;
using Limen.Features.RemoteConsole;
using Limen.Tests.RemoteConsole;

namespace Limen.Tests.Hostile;

/// <summary>
/// The console WebSocket's own rules, for every endpoint the matrix classifies as
/// <see cref="Access.ConsoleTicket"/>: no ticket, a random ticket, another user's ticket or a
/// ticket for another VM are refused before any upgrade and change nothing; the owner's ticket
/// opens the console.
/// </summary>
public sealed class ConsoleWebSocketRulesTests(HostileWorld world) : IClassFixture<HostileWorld>
{
    [Fact]
    public async Task The_console_websocket_admits_only_its_tickets_owner()
    {
        var endpoints = world.Endpoints.Where(e => AccessRules.Find(e.Key)?.Access == Access.ConsoleTicket).ToList();
        Assert.NotEmpty(endpoints);
        await using var vnc = new FakeVncServer();
        var vmId = await ConsoleKit.CreateWiredVmAsync(world.Server, world.User.Client, world.ImageId, "wired", vnc.Port);
        var failures = new List<string>();
        foreach (var endpoint in endpoints)
        {
            var path = endpoint.Path(new Dictionary<string, string> { ["id"] = vmId.ToString() });
            var before = await world.CaptureAsync();

            var plain = await Exchange.SendAsync(world.Anonymous, new HostileRequest("GET", path));
            Expect(failures, plain, 426, ConsoleProblems.UpgradeRequired);
            // The last: a ticket's length whose final character carries padding bits (the decoder threw on it: a 500).
            foreach (var (who, ticket) in new[]
            {
                ("no ticket", (string?)null), ("a random ticket", Convert.ToBase64String(Guid.NewGuid().ToByteArray())),
                ("a ticket-length string with padding bits set", new string('A', 42) + "B"),
            })
            {
                var refused = await ConsoleKit.RefusedUpgradeAsync(world.Server, vmId, ticket);
                Expect(failures, await FromAsync("anonymous with " + who, path, refused), 401, ConsoleProblems.TicketRejected);
            }

            // A ticket is its user's alone: "other" signed in with it is refused, and so is the ticket on another VM.
            var (userTicket, _) = await ConsoleKit.TicketAsync(world.User.Client, vmId);
            var asOther = await ConsoleKit.RefusedUpgradeAsync(world.Server, vmId, userTicket, bearer: world.Other.Client.DefaultRequestHeaders.Authorization!.Parameter);
            Expect(failures, await FromAsync("other with user's ticket", path, asOther), 401, ConsoleProblems.TicketRejected);
            var (elsewhereTicket, _) = await ConsoleKit.TicketAsync(world.User.Client, vmId);
            var elsewhere = await ConsoleKit.RefusedUpgradeAsync(world.Server, world.OtherVmId, elsewhereTicket);
            Expect(failures, await FromAsync("user's ticket on other's VM", $"/vnc/{world.OtherVmId}", elsewhere), 401, ConsoleProblems.TicketRejected);
            var changes = (await world.CaptureAsync()).ChangesSince(before).Where(c => !c.StartsWith("table console_tickets", StringComparison.Ordinal)).ToList();
            if (changes.Count > 0)
            {
                failures.Add($"{endpoint.Key}: refused connects changed {string.Join("; ", changes)}");
            }

            // The owner's own ticket opens the console: the RFB greeting comes through.
            var (ownTicket, _) = await ConsoleKit.TicketAsync(world.User.Client, vmId);
            using var socket = await ConsoleKit.OpenAsync(ConsoleKit.VncUrl(world.Server, vmId, ownTicket));
            var greeting = Encoding.ASCII.GetString(await ConsoleKit.ReadExactAsync(socket, FakeVncServer.Greeting.Length));
            Assert.Equal(FakeVncServer.Greeting, greeting);
            await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", CancellationToken.None);
        }

        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    private static async Task<Exchange> FromAsync(string who, string path, HttpResponseMessage response)
    {
        var requestId = response.Headers.TryGetValues("X-Request-Id", out var values) ? string.Join(",", values) : null;
        return new Exchange(who, new HostileRequest("GET (WebSocket handshake)", path), (int)response.StatusCode,
            response.Content.Headers.ContentType?.MediaType, requestId, await response.Content.ReadAsStringAsync());
    }

    private static void Expect(List<string> failures, Exchange exchange, int status, string type)
    {
        var problems = exchange.ContractViolations().ToList();
        if (exchange.Status != status)
        {
            problems.Insert(0, $"expected {status}");
        }

        if (exchange.ProblemType != type)
        {
            problems.Add($"expected problem type {type}");
        }

        if (problems.Count > 0)
        {
            failures.Add($"{string.Join(", ", problems)}: {exchange}");
        }
    }
}
