using System.Net;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Limen.Tests.Infrastructure;
using Limen.Tests.RemoteConsole;
using Limen.Features.RemoteConsole;
using Limen.Web;

namespace Limen.Tests.Hostile;

/// <summary>
/// Every endpoint of the running application (its EndpointDataSource, not a hand list) ×
/// {anonymous, user, other user, admin}, against the decision in <see cref="AccessRules"/>.
/// Refusals change nothing; another user's id answers exactly as an id of nothing; no response
/// to "other" or to anonymous callers carries anything of "user".
/// </summary>
public sealed class AuthorizationMatrixTests(HostileWorld world) : IClassFixture<HostileWorld>
{
    [Fact]
    public void Every_endpoint_is_classified_and_every_rule_names_a_real_endpoint()
    {
        var keys = world.Endpoints.Select(e => e.Key).ToHashSet();
        var unclassified = keys.Where(k => AccessRules.Find(k) is null).ToList();
        var stale = AccessRules.All.Select(r => r.Key).Where(k => !keys.Contains(k)).ToList();
        Assert.True(unclassified.Count == 0,
            "Endpoints nobody classified (decide who may call them in Hostile/AccessRules.cs): " + string.Join(", ", unclassified));
        Assert.True(stale.Count == 0, "Rules for endpoints that no longer exist: " + string.Join(", ", stale));
        Assert.Equal(AccessRules.All.Count, AccessRules.All.Select(r => r.Key).Distinct().Count());
    }

    [Fact]
    public async Task Every_endpoint_answers_each_principal_as_classified()
    {
        var failures = new List<string>();
        foreach (var endpoint in world.Endpoints)
        {
            if (AccessRules.Find(endpoint.Key) is not { } rule)
            {
                failures.Add($"{endpoint.Key}: not classified");
                continue;
            }

            switch (rule.Access)
            {
                case Access.ConsoleTicket:
                    // Probed by ConsoleWebSocketRulesTests (tickets it issues would be purged in the background, mid-matrix).
                    continue;
                case Access.Public:
                    foreach (var principal in new[] { world.Anonymous, world.User, world.Other, world.Admin })
                    {
                        await PermittedAsync(endpoint, rule, principal, failures);
                    }

                    break;
                case Access.Authenticated:
                    await RefusedAsync(endpoint, rule, world.Anonymous, 401, Problems.Unauthorized, failures);
                    foreach (var principal in new[] { world.User, world.Other, world.Admin })
                    {
                        await PermittedAsync(endpoint, rule, principal, failures);
                    }

                    break;
                case Access.Owner:
                    await RefusedAsync(endpoint, rule, world.Anonymous, 401, Problems.Unauthorized, failures);
                    await LikeNothingAsync(endpoint, rule, failures);
                    await PermittedAsync(endpoint, rule, world.User, failures);
                    await PermittedAsync(endpoint, rule, world.Admin, failures);
                    break;
                case Access.Admin:
                    await RefusedAsync(endpoint, rule, world.Anonymous, 401, Problems.Unauthorized, failures);
                    await RefusedAsync(endpoint, rule, world.User, 403, Problems.Forbidden, failures);
                    await RefusedAsync(endpoint, rule, world.Other, 403, Problems.Forbidden, failures);
                    await PermittedAsync(endpoint, rule, world.Admin, failures);
                    break;
                case Access.Webhook:
                    foreach (var principal in new[] { world.Anonymous, world.User, world.Other, world.Admin })
                    {
                        await RefusedAsync(endpoint, rule, principal, 401, Problems.Unauthorized, failures);
                    }

                    await PermittedAsync(endpoint, rule, world.Webhook, failures);
                    break;
                case Access.PublicPage:
                case Access.StaticFile:
                    foreach (var principal in new[] { world.Anonymous, world.User, world.Other, world.Admin })
                    {
                        await PermittedAsync(endpoint, rule, principal, failures);
                    }

                    break;
                case Access.Page:
                    await SentToSignInAsync(endpoint, rule, failures);
                    foreach (var principal in new[] { world.User, world.Other, world.Admin })
                    {
                        await PermittedAsync(endpoint, rule, principal, failures);
                    }

                    break;
                case Access.AdminPage:
                    await SentToSignInAsync(endpoint, rule, failures);
                    await RefusedAsync(endpoint, rule, world.User, 403, Problems.Forbidden, failures);
                    await RefusedAsync(endpoint, rule, world.Other, 403, Problems.Forbidden, failures);
                    await PermittedAsync(endpoint, rule, world.Admin, failures);
                    break;
                case Access.AdminForm:
                    await SentToSignInAsync(endpoint, rule, failures);
                    await RefusedAsync(endpoint, rule, world.User, 403, Problems.Forbidden, failures);
                    await RefusedAsync(endpoint, rule, world.Other, 403, Problems.Forbidden, failures);
                    await RefusedAsync(endpoint, rule, world.Admin, 400, Problems.AntiforgeryFailed, failures);
                    break;
                case Access.Form:
                case Access.PublicForm:
                    if (rule.Access == Access.Form)
                    {
                        await SentToSignInAsync(endpoint, rule, failures);
                    }
                    else
                    {
                        await RefusedAsync(endpoint, rule, world.Anonymous, 400, Problems.AntiforgeryFailed, failures);
                    }

                    foreach (var principal in new[] { world.User, world.Other, world.Admin })
                    {
                        await RefusedAsync(endpoint, rule, principal, 400, Problems.AntiforgeryFailed, failures);
                    }

                    break;
                default:
                    failures.Add($"{endpoint.Key}: no expectation for {rule.Access}");
                    break;
            }
        }

        Assert.True(failures.Count == 0, $"{failures.Count} authorization failures:\n" + string.Join("\n", failures));
    }

    private async Task<HostileRequest> ProbeAsync(ApiEndpoint endpoint, AccessRule rule, Principal principal, Objects objects)
    {
        var path = await world.PathAsync(endpoint, objects, rule.Values);
        var query = Fill(rule.Query ?? "", principal);
        var body = rule.Body is null ? null : Encoding.UTF8.GetBytes(Fill(rule.Body, principal));
        return new HostileRequest(endpoint.Method, path + query, body, body is null ? null : rule.ContentType);
    }

    private string Fill(string template, Principal principal) => template
        .Replace("{p}", principal.Name, StringComparison.Ordinal)
        .Replace("{image}", world.ImageId.ToString(), StringComparison.Ordinal)
        .Replace("{user}", world.User.Id.ToString(), StringComparison.Ordinal);

    /// <summary>A permitted call: the classified status, and the API's contract for whatever it answers.</summary>
    private async Task PermittedAsync(ApiEndpoint endpoint, AccessRule rule, Principal principal, List<string> failures)
    {
        var exchange = await Exchange.SendAsync(principal, await ProbeAsync(endpoint, rule, principal, rule.Fresh ? Objects.Fresh : Objects.Shared));
        // A classified 5xx (the agent proxy's 503 without an agent) is the endpoint's documented answer.
        var problems = exchange.ContractViolations().Where(v => exchange.Status != rule.Ok || !v.StartsWith("server error", StringComparison.Ordinal)).ToList();
        if (exchange.Status != rule.Ok)
        {
            problems.Insert(0, $"expected {rule.Ok} for a permitted {principal}");
        }

        problems.AddRange(Leaks(principal, exchange, rule));
        if (problems.Count > 0)
        {
            failures.Add($"{endpoint.Key}: {string.Join(", ", problems)}: {exchange}");
        }
    }

    /// <summary>A refused call: the status and problem type of a refusal, and nothing changed.</summary>
    private async Task RefusedAsync(ApiEndpoint endpoint, AccessRule rule, Principal principal, int status, string type, List<string> failures)
    {
        var request = await ProbeAsync(endpoint, rule, principal, Objects.Shared);
        var before = await world.CaptureAsync();
        var exchange = await Exchange.SendAsync(principal, request);
        var changes = (await world.CaptureAsync()).ChangesSince(before);
        var problems = exchange.ContractViolations().ToList();
        if (exchange.Status != status || exchange.ProblemType != type)
        {
            problems.Insert(0, $"expected {status} {type} for {principal}");
        }

        problems.AddRange(changes.Select(c => "changed " + c));
        problems.AddRange(Leaks(principal, exchange));
        if (problems.Count > 0)
        {
            failures.Add($"{endpoint.Key}: {string.Join(", ", problems)}: {exchange}");
        }
    }

    /// <summary>A page opened without signing in: the sign-in page, with the way back to the page, and nothing changed.</summary>
    private async Task SentToSignInAsync(ApiEndpoint endpoint, AccessRule rule, List<string> failures)
    {
        var request = await ProbeAsync(endpoint, rule, world.Anonymous, Objects.Shared);
        var before = await world.CaptureAsync();
        var exchange = await Exchange.SendAsync(world.Anonymous, request);
        var changes = (await world.CaptureAsync()).ChangesSince(before);
        var problems = exchange.ContractViolations().ToList();
        var expected = "/signin?return=" + Uri.EscapeDataString(request.PathAndQuery);
        if (exchange.Status != 200 || exchange.Landed != expected)
        {
            problems.Insert(0, $"expected the sign-in page at {expected}, landed on {exchange.Landed ?? "the page itself"} with {exchange.Status}");
        }

        problems.AddRange(changes.Select(c => "changed " + c));
        // The sign-in page carries the path asked for as its way back: a rule whose route holds an id says so (EchoesRequests).
        problems.AddRange(Leaks(world.Anonymous, exchange, rule));
        if (problems.Count > 0)
        {
            failures.Add($"{endpoint.Key}: {string.Join(", ", problems)}: {exchange}");
        }
    }

    /// <summary>"other" on user's objects: exactly the answer for ids of nothing (a 404 problem), and nothing changed.</summary>
    private async Task LikeNothingAsync(ApiEndpoint endpoint, AccessRule rule, List<string> failures)
    {
        var real = await ProbeAsync(endpoint, rule, world.Other, Objects.Shared);
        var before = await world.CaptureAsync();
        var theirs = await Exchange.SendAsync(world.Other, real);
        var changes = (await world.CaptureAsync()).ChangesSince(before);
        var nothing = await Exchange.SendAsync(world.Other, await ProbeAsync(endpoint, rule, world.Other, Objects.Random));
        var problems = theirs.ContractViolations().ToList();
        if (theirs.Status != 404 || theirs.ProblemType != Problems.NotFound)
        {
            problems.Insert(0, "expected 404 not-found for another user's object");
        }

        if (theirs.Status != nothing.Status || Normalized(theirs) != Normalized(nothing))
        {
            problems.Add($"answered unlike an id of nothing, which gave {nothing.Status} {Exchange.Printable(nothing.Body, 300)}");
        }

        problems.AddRange(changes.Select(c => "changed " + c));
        problems.AddRange(Leaks(world.Other, theirs));
        if (problems.Count > 0)
        {
            failures.Add($"{endpoint.Key}: {string.Join(", ", problems)}: {theirs}");
        }
    }

    /// <summary>The body without what differs between any two calls (request id, the ids in the route).</summary>
    private static string Normalized(Exchange exchange)
    {
        var text = exchange.Body;
        try
        {
            if (JsonDocument.Parse(text).RootElement is { ValueKind: JsonValueKind.Object } root)
            {
                text = JsonSerializer.Serialize(root.EnumerateObject().Where(p => p.Name is not ("request_id" or "trace_id")).ToDictionary(p => p.Name, p => p.Value));
            }
        }
        catch (JsonException)
        {
            // Not JSON: compared as it is.
        }

        return System.Text.RegularExpressions.Regex.Replace(text, "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", "<id>");
    }

    /// <summary>
    /// What "other" and anonymous callers must not see: any id or unique name of user's objects, and
    /// in a list any item whose owner (user_id, owner_id) is not the caller. A list of the caller's
    /// own acts (the audit trail) may repeat the ids the caller itself sent, so there only owners count.
    /// </summary>
    private IEnumerable<string> Leaks(Principal principal, Exchange exchange, AccessRule? rule = null)
    {
        if (principal != world.Other && principal != world.Anonymous)
        {
            yield break;
        }

        foreach (var item in Items(exchange))
        {
            foreach (var owner in new[] { "user_id", "owner_id" })
            {
                if (item.TryGetProperty(owner, out var id) && id.ValueKind == JsonValueKind.String && id.GetString() != principal.Id?.ToString())
                {
                    yield return $"the list shows {principal} an item with {owner} {id.GetString()}";
                }
            }
        }

        if (rule?.EchoesRequests == true)
        {
            yield break;
        }

        foreach (var secret in world.UserSecrets.Where(s => exchange.Body.Contains(s, StringComparison.OrdinalIgnoreCase)))
        {
            yield return $"the body shows user's '{secret}' to {principal}";
        }
    }

    private static List<JsonElement> Items(Exchange exchange)
    {
        JsonElement root;
        try
        {
            root = JsonDocument.Parse(exchange.Body).RootElement;
        }
        catch (JsonException)
        {
            return [];
        }

        var list = root.ValueKind == JsonValueKind.Object && root.TryGetProperty("items", out var items) ? items : root;
        return list.ValueKind == JsonValueKind.Array ? list.EnumerateArray().Where(i => i.ValueKind == JsonValueKind.Object).ToList() : [];
    }
}
