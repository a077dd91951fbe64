using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Limen.Tests.Infrastructure;
using Limen.Web;

namespace Limen.Tests.Observability;

public sealed class WebhookServerFixture : IAsyncLifetime
{
    public const string Token = "webhook-token-for-tests";
    private LimenTestServer? server;

    public LimenTestServer Server => server ?? throw new InvalidOperationException("not started");

    public async Task InitializeAsync() =>
        server = await LimenTestServer.StartAsync(new Dictionary<string, string?> { ["Limen:Alerts:WebhookToken"] = Token });

    public async Task DisposeAsync()
    {
        if (server is not null)
        {
            await server.DisposeAsync();
        }
    }
}

/// <summary>POST /api/alerts/webhook and GET /api/alerts with good and bad input.</summary>
public sealed class AlertWebhookTests(WebhookServerFixture fixture) : IClassFixture<WebhookServerFixture>
{
    private LimenTestServer Server => fixture.Server;

    internal static string Payload(string fingerprint, string status = "firing", string startsAt = "2026-01-02T03:04:05.123456789Z",
        string endsAt = "0001-01-01T00:00:00Z", string alertname = "HighHostDiskUsage", string receiver = "warning") => $$"""
        {
          "receiver": "{{receiver}}", "status": "{{status}}", "version": "4",
          "groupKey": "{}/{severity=\"warning\"}:{alertname=\"{{alertname}}\", instance=\"host-a\"}", "truncatedAlerts": 0,
          "groupLabels": {"alertname": "{{alertname}}", "instance": "host-a"},
          "commonLabels": {"alertname": "{{alertname}}", "instance": "host-a", "severity": "warning"},
          "commonAnnotations": {"summary": "Disk usage 91% on host-a"},
          "externalURL": "http://127.0.0.1:9093",
          "alerts": [{
            "status": "{{status}}",
            "labels": {"alertname": "{{alertname}}", "instance": "host-a", "severity": "warning", "mountPoint": "/var"},
            "annotations": {"summary": "Disk usage 91% on host-a", "runbook_url": "https://example/HighHostDiskUsage.md"},
            "startsAt": "{{startsAt}}", "endsAt": "{{endsAt}}",
            "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=x", "fingerprint": "{{fingerprint}}"
          }]
        }
        """;

    [Fact]
    public async Task Firing_then_resolved_updates_one_row_and_a_replay_does_not_duplicate_it()
    {
        const string fp = "a1b2c3d4e5f60001";
        Assert.Equal(HttpStatusCode.NoContent, (await PostAsync(Payload(fp))).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await PostAsync(Payload(fp))).StatusCode);   // replay / repeat
        var alert = await SingleAlertAsync(fp);
        Assert.Equal("firing", alert.GetProperty("status").GetString());
        Assert.Equal(JsonValueKind.Null, alert.GetProperty("ends_at").ValueKind);
        Assert.Equal(2, alert.GetProperty("count").GetInt32());

        var resolved = Payload(fp, "resolved", endsAt: "2026-01-02T03:14:05Z");
        Assert.Equal(HttpStatusCode.NoContent, (await PostAsync(resolved)).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await PostAsync(resolved)).StatusCode);
        alert = await SingleAlertAsync(fp);
        Assert.Equal("resolved", alert.GetProperty("status").GetString());
        Assert.Equal(new DateTimeOffset(2026, 1, 2, 3, 14, 5, TimeSpan.Zero), alert.GetProperty("ends_at").GetDateTimeOffset());
        Assert.Equal(4, alert.GetProperty("count").GetInt32());
        Assert.Equal(1, await Server.Database.ScalarAsync($"SELECT count(*) FROM alerts WHERE fingerprint = '{fp}'"));

        // snake_case members, but label and annotation names exactly as Prometheus wrote them.
        Assert.Equal("warning", alert.GetProperty("receiver").GetString());
        Assert.Equal("HighHostDiskUsage", alert.GetProperty("alertname").GetString());
        Assert.Equal("/var", alert.GetProperty("labels").GetProperty("mountPoint").GetString());
        Assert.Equal("https://example/HighHostDiskUsage.md", alert.GetProperty("annotations").GetProperty("runbook_url").GetString());
        // PostgreSQL keeps microseconds of Alertmanager's nanoseconds; a replay truncates the same way, so it still matches.
        Assert.Equal(new DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.Zero).AddTicks(1234560), alert.GetProperty("starts_at").GetDateTimeOffset());
        Assert.True(alert.GetProperty("last_received_at").GetDateTimeOffset() >= alert.GetProperty("first_received_at").GetDateTimeOffset());

        // The same alert firing again later is a new episode: a new row.
        Assert.Equal(HttpStatusCode.NoContent, (await PostAsync(Payload(fp, startsAt: "2026-01-02T05:00:00Z"))).StatusCode);
        Assert.Equal(2, await Server.Database.ScalarAsync($"SELECT count(*) FROM alerts WHERE fingerprint = '{fp}'"));
    }

    [Fact]
    public async Task Missing_or_wrong_token_or_a_users_jwt_is_401_counted_and_stores_nothing()
    {
        var before = await Server.MetricsAsync();
        await ProblemAssert.IsProblem(await PostAsync(Payload("b000000000000001"), token: null), HttpStatusCode.Unauthorized, Problems.Unauthorized);
        await ProblemAssert.IsProblem(await PostAsync(Payload("b000000000000002"), token: "wrong"), HttpStatusCode.Unauthorized, Problems.Unauthorized);
        await ProblemAssert.IsProblem(await PostAsync(Payload("b000000000000003"), token: WebhookServerFixture.Token + "x"),
            HttpStatusCode.Unauthorized, Problems.Unauthorized);
        var adminJwt = await Server.AdminTokenAsync();
        var asAdmin = await PostAsync(Payload("b000000000000004"), token: adminJwt);
        await ProblemAssert.IsProblem(asAdmin, HttpStatusCode.Unauthorized, Problems.Unauthorized);
        Assert.Contains("Bearer", asAdmin.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);

        Assert.Equal(0, await Server.Database.ScalarAsync("SELECT count(*) FROM alerts WHERE fingerprint LIKE 'b00000000000000%'"));
        var after = await Server.MetricsAsync();
        Assert.Equal(4, ProblemAssert.Sample(after, "auth_failure_total", "reason=\"invalid_webhook_token\"")
            - ProblemAssert.Sample(before, "auth_failure_total", "reason=\"invalid_webhook_token\""));
        // The JWT handler never saw Alertmanager's token.
        Assert.Equal(ProblemAssert.Sample(before, "auth_failure_total", "reason=\"invalid_token\""),
            ProblemAssert.Sample(after, "auth_failure_total", "reason=\"invalid_token\""));
    }

    private const string Malformed = Problems.MalformedRequest;
    private const string Invalid = Problems.Validation;

    public static TheoryData<string, string, string> BadPayloads => new()
    {
        { "{\"receiver\":\"warning\",\"status\":", Malformed, "" },                                  // truncated
        { "[]", Malformed, "$" },
        { "null", Invalid, "$" },
        { Payload("c000000000000001").Replace("\"version\": \"4\"", "\"version\": \"3\"", StringComparison.Ordinal), Invalid, "$.version" },
        { Payload("c000000000000002").Replace("\"fingerprint\": \"c000000000000002\"", "\"fingerprint\": \"not-hex!\"", StringComparison.Ordinal), Invalid, "$.alerts[0].fingerprint" },
        { Payload("c000000000000003", status: "exploded"), Invalid, "$.status" },
        { Payload("c000000000000004", startsAt: "yesterday"), Malformed, "$.alerts[0].startsAt" },
        { Payload("c000000000000005").Replace("\"receiver\": \"warning\", ", "", StringComparison.Ordinal), Malformed, "" },   // required member missing
        { Payload("c000000000000006").Replace("\"alertname\": \"HighHostDiskUsage\", \"instance\": \"host-a\", \"severity\"", "\"instance\": \"host-a\", \"severity\"", StringComparison.Ordinal), Invalid, "$.alerts[0].labels.alertname" },
        { Payload("c000000000000007").Replace("\"labels\": {\"alertname\"", "\"labels\": {\"n\": 1, \"alertname\"", StringComparison.Ordinal), Malformed, "$.alerts[0].labels.n" },
        { Payload("c000000000000008").Replace("\"labels\": {\"alertname\"", "\"labels\": {\"n\": null, \"alertname\"", StringComparison.Ordinal), Invalid, "$.alerts[0].labels" },
        { Payload("c000000000000009").Replace("\"alerts\": [{", "\"alerts\": [null, {", StringComparison.Ordinal), Invalid, "$.alerts[0]" },
        { Payload("c000000000000010").Replace("\"alerts\": [{", "\"alerts\": [], \"x\": [{", StringComparison.Ordinal), Invalid, "$.alerts" },
        { Payload("c000000000000011").Replace("\"/var\"", "\"/v\\u0000ar\"", StringComparison.Ordinal), Invalid, "$.alerts[0].labels.mountPoint" },
        { Payload("c000000000000012").Replace("\"mountPoint\"", "\"mount\\u0000Point\"", StringComparison.Ordinal), Invalid, "$.alerts[0].labels" },
        { Payload("c000000000000013").Replace("\"status\": \"firing\"", "\"status\": \"firing\", \"status\": \"resolved\"", StringComparison.Ordinal), Malformed, "$.status" },
    };

    [Theory]
    [MemberData(nameof(BadPayloads))]
    public async Task Malformed_or_invalid_payload_is_400_naming_the_field_and_stores_nothing(string body, string type, string field)
    {
        var before = await Server.Database.ScalarAsync("SELECT count(*) FROM alerts");
        var problem = await ProblemAssert.IsProblem(await PostAsync(body), HttpStatusCode.BadRequest, type);
        if (field.Length > 0)
        {
            Assert.Equal(field, problem.GetProperty("field").GetString());
        }

        Assert.DoesNotContain("Limen.", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(before, await Server.Database.ScalarAsync("SELECT count(*) FROM alerts"));
    }

    [Fact]
    public async Task Oversized_payload_is_413_and_stores_nothing()
    {
        var huge = Payload("d000000000000001").Replace("Disk usage 91% on host-a\", \"runbook_url",
            new string('x', 2 * 1024 * 1024) + "\", \"runbook_url", StringComparison.Ordinal);
        await ProblemAssert.IsProblem(await PostAsync(huge), HttpStatusCode.RequestEntityTooLarge, Problems.PayloadTooLarge);
        Assert.Equal(0, await Server.Database.ScalarAsync("SELECT count(*) FROM alerts WHERE fingerprint = 'd000000000000001'"));
    }

    [Fact]
    public async Task Non_json_content_type_is_415()
    {
        using var client = WebhookClient(WebhookServerFixture.Token);
        var response = await client.PostAsync("/api/alerts/webhook", new StringContent(Payload("e000000000000001"), Encoding.UTF8, "text/plain"));
        await ProblemAssert.IsProblem(response, HttpStatusCode.UnsupportedMediaType, Problems.UnsupportedMediaType);
    }

    [Fact]
    public async Task The_list_is_for_admins_filters_by_status_and_pages()
    {
        Assert.Equal(HttpStatusCode.NoContent, (await PostAsync(Payload("f000000000000001", alertname: "ListFiring"))).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await PostAsync(Payload("f000000000000002", alertname: "ListResolved", status: "resolved",
            endsAt: "2026-01-02T04:00:00Z"))).StatusCode);

        var (_, userToken) = await Server.CreateUserAsync("alertreader");
        using var user = Server.Client(userToken);
        await ProblemAssert.IsProblem(await user.GetAsync("/api/alerts"), HttpStatusCode.Forbidden, Problems.Forbidden);
        using var anonymous = Server.Client();
        await ProblemAssert.IsProblem(await anonymous.GetAsync("/api/alerts"), HttpStatusCode.Unauthorized, Problems.Unauthorized);

        using var admin = Server.Client(await Server.AdminTokenAsync());
        var firing = await ProblemAssert.Json(await admin.GetAsync("/api/alerts?status=firing&page_size=200"));
        Assert.Contains(firing.GetProperty("items").EnumerateArray(), a => a.GetProperty("alertname").GetString() == "ListFiring");
        Assert.All(firing.GetProperty("items").EnumerateArray(), a => Assert.Equal("firing", a.GetProperty("status").GetString()));
        var resolved = await ProblemAssert.Json(await admin.GetAsync("/api/alerts?status=resolved&alertname=ListResolved"));
        Assert.Equal(1, resolved.GetProperty("total").GetInt32());

        var paged = await ProblemAssert.Json(await admin.GetAsync("/api/alerts?page=1&page_size=1"));
        Assert.Single(paged.GetProperty("items").EnumerateArray());
        Assert.True(paged.GetProperty("total").GetInt32() >= 2);
        Assert.Equal(1, paged.GetProperty("page_size").GetInt32());

        await ProblemAssert.IsProblem(await admin.GetAsync("/api/alerts?status=burning"), HttpStatusCode.BadRequest, Problems.Validation);
        await ProblemAssert.IsProblem(await admin.GetAsync("/api/alerts?page_size=1000"), HttpStatusCode.BadRequest, Problems.Validation);
    }

    [Fact]
    public async Task A_token_file_is_read_on_every_call_so_rotation_needs_no_restart()
    {
        var tokenFile = Path.GetTempFileName();
        try
        {
            await File.WriteAllTextAsync(tokenFile, "first-token\n");
            await using var server = await LimenTestServer.StartAsync(new Dictionary<string, string?> { ["Limen:Alerts:WebhookTokenFile"] = tokenFile });
            Assert.Equal(HttpStatusCode.NoContent, (await PostAsync(server, Payload("aa00000000000001"), "first-token")).StatusCode);
            await File.WriteAllTextAsync(tokenFile, "second-token");
            await ProblemAssert.IsProblem(await PostAsync(server, Payload("aa00000000000002"), "first-token"), HttpStatusCode.Unauthorized, Problems.Unauthorized);
            Assert.Equal(HttpStatusCode.NoContent, (await PostAsync(server, Payload("aa00000000000003"), "second-token")).StatusCode);
        }
        finally
        {
            File.Delete(tokenFile);
        }
    }

    [Fact]
    public async Task Without_a_configured_token_every_call_is_refused()
    {
        await using var server = await LimenTestServer.StartAsync();
        await ProblemAssert.IsProblem(await PostAsync(server, Payload("ab00000000000001"), ""), HttpStatusCode.Unauthorized, Problems.Unauthorized);
        await ProblemAssert.IsProblem(await PostAsync(server, Payload("ab00000000000002"), "anything"), HttpStatusCode.Unauthorized, Problems.Unauthorized);
        Assert.Equal(0, await server.Database.ScalarAsync("SELECT count(*) FROM alerts"));
    }

    private Task<HttpResponseMessage> PostAsync(string body, string? token = WebhookServerFixture.Token) => PostAsync(Server, body, token);

    private static async Task<HttpResponseMessage> PostAsync(LimenTestServer server, string body, string? token)
    {
        using var client = server.Client();
        if (token is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        return await client.PostAsync("/api/alerts/webhook", new StringContent(body, Encoding.UTF8, "application/json"));
    }

    private HttpClient WebhookClient(string token)
    {
        var client = Server.Client();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return client;
    }

    private async Task<JsonElement> SingleAlertAsync(string fingerprint)
    {
        using var admin = Server.Client(await Server.AdminTokenAsync());
        var list = await ProblemAssert.Json(await admin.GetAsync("/api/alerts?page_size=200"));
        return Assert.Single(list.GetProperty("items").EnumerateArray(), a => a.GetProperty("fingerprint").GetString() == fingerprint);
    }
}
