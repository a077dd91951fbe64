using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Limen.Features.Audit;
using Limen.Tests.RemoteConsole;
using Limen.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Limen.Tests.Foundation;

/// <summary>Anonymous requests cannot grow the audit table without bound: a budget per client and overall, the rest aggregated.</summary>
public sealed class AnonymousAuditTests
{
    private const int PerClient = 5;
    private const int Overall = 12;
    private static readonly DateTimeOffset T0 = new(2026, 12, 1, 10, 0, 0, TimeSpan.Zero);

    private static AnonymousAuditBudget Budget() =>
        new(Options.Create(new AuditOptions { AnonymousRowsPerIpPerMinute = PerClient, AnonymousRowsPerMinute = Overall }));

    [Fact]
    public void One_client_gets_its_budget_and_the_rest_becomes_one_aggregate_once_the_window_has_ended()
    {
        var budget = Budget();
        var admitted = Enumerable.Range(0, 30).Count(i => budget.TryAdmit("192.0.2.1", i % 2 == 0 ? "auth.logout" : "auth.login", T0.AddSeconds(i)));

        Assert.Equal(PerClient, admitted);
        Assert.Empty(budget.TakeEnded(T0.AddSeconds(59)));   // the window is still running
        var aggregate = Assert.Single(budget.TakeEnded(T0.AddMinutes(1)));
        Assert.Equal(("192.0.2.1", T0, T0.AddMinutes(1), 25), (aggregate.ClientIp, aggregate.WindowStart, aggregate.WindowEnd, aggregate.Count));
        Assert.Equal(new Dictionary<string, int> { ["auth.logout"] = 12, ["auth.login"] = 13 }, aggregate.Actions);
        Assert.Empty(budget.TakeEnded(T0.AddMinutes(2)));    // handed out once
        Assert.True(budget.TryAdmit("192.0.2.1", "auth.logout", T0.AddMinutes(1)));   // a new window, a new budget
    }

    [Fact]
    public void Many_clients_share_the_overall_budget_and_what_is_over_it_is_one_aggregate_without_a_client()
    {
        var budget = Budget();
        var admitted = new List<string>();
        for (var client = 1; client <= 6; client++)
        {
            for (var i = 0; i < 3; i++)
            {
                if (budget.TryAdmit($"2001:db8::{client}", "console.connect", T0.AddSeconds(client)))
                {
                    admitted.Add($"2001:db8::{client}");
                }
            }
        }

        Assert.Equal(Overall, admitted.Count);                       // clients 1-4 fit, 5 and 6 do not
        var overflow = Assert.Single(budget.TakeAll(T0.AddSeconds(30)));
        Assert.Null(overflow.ClientIp);
        Assert.Equal(6, overflow.Count);
        Assert.Equal(T0.AddSeconds(30), overflow.WindowEnd);         // at shutdown the running window is closed now
    }

    [Fact]
    public void Any_burst_in_a_window_adds_at_most_the_documented_rows_and_loses_no_count()
    {
        var random = new Random(20261201);
        for (var round = 0; round < 200; round++)
        {
            var budget = Budget();
            var events = random.Next(0, 400);
            var clients = random.Next(1, 40);
            var written = 0;
            for (var i = 0; i < events; i++)
            {
                written += budget.TryAdmit($"10.0.0.{random.Next(clients)}", $"action.{random.Next(4)}", T0.AddMilliseconds(i)) ? 1 : 0;
            }

            var aggregates = budget.TakeEnded(T0.AddMinutes(1));
            Assert.True(written + aggregates.Count <= Overall + Overall / PerClient + 1, $"round {round}: {written} rows + {aggregates.Count} aggregates");
            Assert.Equal(events, written + aggregates.Sum(a => a.Count));
        }
    }

    [Fact]
    public async Task A_burst_of_anonymous_requests_adds_at_most_the_budget_plus_one_aggregate_per_client_and_one_overall()
    {
        var clock = new ShiftableClock();
        await using var server = await LimenTestServer.StartAsync(new Dictionary<string, string?>
        {
            // Behind a trusted proxy (loopback here) X-Forwarded-For is the client: many clients from one test.
            ["Limen:TrustedProxies:0"] = "127.0.0.1",
            ["Limen:Audit:AnonymousRowsPerIpPerMinute"] = PerClient.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Limen:Audit:AnonymousRowsPerMinute"] = Overall.ToString(System.Globalization.CultureInfo.InvariantCulture),
        }, services => services.AddSingleton<TimeProvider>(clock));
        // Start the burst just after a window opens, so one window holds all of it.
        var now = clock.GetUtcNow();
        clock.Advance(TimeSpan.FromTicks(AnonymousAuditBudget.Window.Ticks - now.UtcTicks % AnonymousAuditBudget.Window.Ticks) + TimeSpan.FromSeconds(1));
        var before = await server.Database.ScalarAsync("SELECT coalesce(max(id), 0) FROM audit_logs");
        using var client = server.Client();

        // 40 from one client: logouts without a session, failed logins of names that do not exist, refused console connects.
        for (var i = 0; i < 40; i++)
        {
            var status = await SendAsync(client, "198.51.100.1", i % 3);
            Assert.True(status is HttpStatusCode.NoContent or HttpStatusCode.Unauthorized or HttpStatusCode.UpgradeRequired, $"request {i}: {status}");
        }

        // Then 3 each from 10 more clients.
        for (var c = 1; c <= 10; c++)
        {
            for (var i = 0; i < 3; i++)
            {
                Assert.Equal(HttpStatusCode.NoContent, await SendAsync(client, $"203.0.113.{c}", 0));
            }
        }

        // An act that names a user is never held back: a wrong password for the admin, from the busiest client.
        var wrong = new HttpRequestMessage(HttpMethod.Post, "/api/auth/login") { Content = JsonContent.Create(new { username = "admin", password = "not the password" }) };
        wrong.Headers.Add("X-Forwarded-For", "198.51.100.1");
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.SendAsync(wrong)).StatusCode);

        string Since(string where) => $"SELECT count(*) FROM audit_logs WHERE id > {before} AND {where}";
        Assert.Equal(Overall, await server.Database.ScalarAsync(Since("user_id IS NULL")));
        Assert.Equal(PerClient, await server.Database.ScalarAsync(Since("client_ip = '198.51.100.1' AND user_id IS NULL")));
        Assert.Equal(1, await server.Database.ScalarAsync(Since("action = 'auth.login' AND user_id IS NOT NULL AND result = 'failure'")));

        // The window ends: one row for the busy client's 35, one for the 23 over the overall budget.
        clock.Advance(TimeSpan.FromMinutes(2));
        await Eventually.WaitAsync(async () => await server.Database.ScalarAsync(Since("action = 'audit.suppressed'")) == 2,
            TimeSpan.FromSeconds(30), "the aggregate rows of the ended window");
        Assert.Equal(1, await server.Database.ScalarAsync(Since("action = 'audit.suppressed' AND client_ip = '198.51.100.1' AND result = 'denied' AND error_code = 'rate_limited'")));
        var overflow = JsonDocument.Parse(await DetailsAsync(server, "client_ip IS NULL")).RootElement;
        Assert.Equal(23, overflow.GetProperty("count").GetInt32());
        Assert.Equal(23, overflow.GetProperty("actions").GetProperty("auth.logout").GetInt32());
        var busy = JsonDocument.Parse(await DetailsAsync(server, "client_ip = '198.51.100.1'")).RootElement;
        Assert.Equal(35, busy.GetProperty("count").GetInt32());
        Assert.Equal(new Dictionary<string, int> { ["auth.logout"] = 12, ["auth.login"] = 11, ["console.connect"] = 12 },
            busy.GetProperty("actions").EnumerateObject().ToDictionary(a => a.Name, a => a.Value.GetInt32()));
        Assert.Equal(AnonymousAuditBudget.Window, busy.GetProperty("window_end").GetDateTimeOffset() - busy.GetProperty("window_start").GetDateTimeOffset());

        // 70 anonymous requests added 14 rows: within the documented bound (overall + overall / per-client + 1).
        Assert.Equal(Overall + 2, await server.Database.ScalarAsync(Since("user_id IS NULL")));
        Assert.True(Overall + 2 <= Overall + Overall / PerClient + 1);
    }

    /// <summary>kind 0: logout without a session; 1: failed login of a name that does not exist; 2: a console connect that is no WebSocket.</summary>
    private static async Task<HttpStatusCode> SendAsync(HttpClient client, string clientIp, int kind)
    {
        using var request = kind switch
        {
            0 => new HttpRequestMessage(HttpMethod.Post, "/api/auth/logout"),
            1 => new HttpRequestMessage(HttpMethod.Post, "/api/auth/login") { Content = JsonContent.Create(new { username = "nobody-" + clientIp.Replace('.', '-'), password = "whatever it is" }) },
            _ => new HttpRequestMessage(HttpMethod.Get, $"/vnc/{Guid.NewGuid()}?ticket=forged"),
        };
        request.Headers.Add("X-Forwarded-For", clientIp);
        return (await client.SendAsync(request)).StatusCode;
    }

    private static async Task<string> DetailsAsync(LimenTestServer server, string where)
    {
        await using var connection = new Npgsql.NpgsqlConnection(server.Database.ConnectionString);
        await connection.OpenAsync();
        await using var command = new Npgsql.NpgsqlCommand($"SELECT details::text FROM audit_logs WHERE action = 'audit.suppressed' AND {where}", connection);
        return (string)(await command.ExecuteScalarAsync())!;
    }
}
