using System.Net;
using System.Net.Http.Json;
using System.Text;
using Limen.Tests.Infrastructure;
using Limen.Web;

namespace Limen.Tests.Foundation;

/// <summary>Every kind of bad request gets a problem+json 4xx and changes nothing.</summary>
public sealed class ErrorContractTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private LimenTestServer Server => fixture.Server;

    public static TheoryData<string, string?> MalformedBodies => new()
    {
        { "{\"username\":\"x1y2z3\",\"password\":", "$.password" },        // truncated JSON
        { "{\"username\":\"x1y2z3\",\"password\":12345678901234}", "$.password" }, // wrong type
        { "{\"username\":\"x1y2z3\"}", null },                              // missing field
        { "{\"username\":\"x1y2z3\",\"password\":null}", "$.password" },    // null for a required string
        { "{\"username\":\"x1y2z3\",\"password\":\"twelve chars ok\",\"is_admin\":true}", "$.is_admin" }, // unknown field
        { "[1,2,3]", "$" },
        { "", null },
    };

    [Theory]
    [MemberData(nameof(MalformedBodies))]
    public async Task Malformed_json_is_400_naming_the_field_and_creates_nothing(string json, string? field)
    {
        using var admin = Server.Client(await Server.AdminTokenAsync());
        var before = await Server.Database.ScalarAsync("SELECT count(*) FROM users");
        var response = await admin.PostAsync("/api/admin/users", new StringContent(json, Encoding.UTF8, "application/json"));
        var problem = await ProblemAssert.IsProblem(response, HttpStatusCode.BadRequest, Problems.MalformedRequest);
        if (field is not null)
        {
            Assert.Equal(field, problem.GetProperty("field").GetString());
        }

        Assert.DoesNotContain("Limen.", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(before, await Server.Database.ScalarAsync("SELECT count(*) FROM users"));
    }

    [Fact]
    public async Task A_huge_body_is_413()
    {
        using var admin = Server.Client(await Server.AdminTokenAsync());
        var huge = "{\"username\":\"huge\",\"password\":\"" + new string('a', 2 * 1024 * 1024) + "\"}";
        var response = await admin.PostAsync("/api/admin/users", new StringContent(huge, Encoding.UTF8, "application/json"));
        await ProblemAssert.IsProblem(response, HttpStatusCode.RequestEntityTooLarge, Problems.PayloadTooLarge);
        Assert.Equal(0, await Server.Database.ScalarAsync("SELECT count(*) FROM users WHERE username = 'huge'"));
    }

    [Fact]
    public async Task A_huge_chunked_body_without_content_length_is_413_too()
    {
        using var admin = Server.Client(await Server.AdminTokenAsync());
        var huge = "{\"username\":\"chunky\",\"password\":\"" + new string('a', 2 * 1024 * 1024) + "\"}";
        var content = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(huge)));
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/admin/users") { Content = content };
        request.Headers.TransferEncodingChunked = true;
        var response = await admin.SendAsync(request);
        await ProblemAssert.IsProblem(response, HttpStatusCode.RequestEntityTooLarge, Problems.PayloadTooLarge);
    }

    [Fact]
    public async Task Unknown_route_is_a_404_problem_even_anonymously()
    {
        using var client = Server.Client();
        await ProblemAssert.IsProblem(await client.GetAsync("/api/no-such-thing"), HttpStatusCode.NotFound, Problems.NotFound);
    }

    [Fact]
    public async Task Wrong_method_is_a_405_problem()
    {
        using var client = Server.Client();
        await ProblemAssert.IsProblem(await client.DeleteAsync("/api/health"), HttpStatusCode.MethodNotAllowed, Problems.MethodNotAllowed);
    }

    [Fact]
    public async Task Wrong_content_type_is_a_415_problem()
    {
        using var client = Server.Client();
        var response = await client.PostAsync("/api/auth/login", new StringContent("username=admin", Encoding.UTF8, "text/plain"));
        await ProblemAssert.IsProblem(response, HttpStatusCode.UnsupportedMediaType, Problems.UnsupportedMediaType);
    }

    [Fact]
    public async Task A_missing_token_is_a_401_problem()
    {
        using var client = Server.Client();
        await ProblemAssert.IsProblem(await client.GetAsync("/api/audit"), HttpStatusCode.Unauthorized, Problems.Unauthorized);
    }

    [Fact]
    public async Task Metrics_label_routes_by_template_and_count_rejected_requests()
    {
        var (id, _) = await Server.CreateUserAsync("metric-target");
        using var admin = Server.Client(await Server.AdminTokenAsync());
        // The class's tests share the server (one at a time): count this test's requests as a difference.
        var before = await Server.MetricsAsync();
        await admin.GetAsync($"/api/admin/users/{id}");
        using var anonymous = Server.Client();
        await anonymous.GetAsync($"/api/admin/users/{id}");

        var metrics = await Server.MetricsAsync();
        Assert.DoesNotContain(id.ToString(), metrics, StringComparison.Ordinal);
        foreach (var status in new[] { "200", "401" })
        {
            var labels = $"method=\"GET\",route=\"/api/admin/users/{{id:guid}}\",status=\"{status}\"";
            Assert.Equal(1, ProblemAssert.Sample(metrics, "http_requests_total", labels) - ProblemAssert.Sample(before, "http_requests_total", labels));
        }
        Assert.Contains("http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/admin/users/{id:guid}\"", metrics, StringComparison.Ordinal);
        Assert.Contains("# TYPE auth_failure_total counter", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Database_and_libvirt_gauges_are_set_by_the_background_probe_without_any_health_request()
    {
        await using var server = await LimenTestServer.StartAsync();
        for (var i = 0; i < 100 && ProblemAssert.Sample(await server.MetricsAsync(), "limen_database_up") != 1; i++)
        {
            await Task.Delay(100);
        }

        var metrics = await server.MetricsAsync();
        Assert.Equal(1, ProblemAssert.Sample(metrics, "limen_database_up"));
        Assert.Equal(1, ProblemAssert.Sample(metrics, "limen_libvirt_up"));
        Assert.Equal(0, ProblemAssert.Sample(metrics, "http_requests_total", "method=\"GET\",route=\"/api/health/\",status=\"200\""));
    }

    [Fact]
    public async Task The_openapi_document_and_the_browsable_reference_are_served()
    {
        using var client = Server.Client();
        var document = await ProblemAssert.Json(await client.GetAsync("/api/openapi/v1.json"));
        var paths = document.GetProperty("paths");
        Assert.True(paths.TryGetProperty("/api/auth/login", out _));
        Assert.True(paths.TryGetProperty("/api/admin/users/{id}", out _));
        var page = await client.GetAsync("/api/docs");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Contains("text/html", page.Content.Headers.ContentType?.MediaType, StringComparison.Ordinal);
    }
}
