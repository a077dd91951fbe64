using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Limen.Tests.Infrastructure;
using Limen.Web;

namespace Limen.Tests.Input;

/// <summary>
/// The cases the hostile-input barrage found, one per class: each gets a 4xx problem naming the
/// field in the API's words, carries X-Request-Id, and changes nothing.
/// </summary>
public sealed class InputPolicyTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private LimenTestServer Server => fixture.Server;

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    public static TheoryData<string, string> BadUserBodies => new()
    {
        { """{"username":"nul\u0000user","password":"correct horse battery"}""", "username" },
        { """{"username":"newline-user\n","password":"correct horse battery"}""", "username" },
        { """{"username":"dup-user","username":"dup-user2","password":"correct horse battery"}""", "$.username" },
        { """{"Username":"case-user","password":"correct horse battery"}""", "$.Username" },
        { """{"username":"lone-user","password":"correct horse \ud800 battery"}""", "$.password" },
    };

    [Theory]
    [MemberData(nameof(BadUserBodies))]
    public async Task A_user_body_that_breaks_the_input_policy_is_400_and_creates_nobody(string json, string field)
    {
        using var admin = Server.Client(await Server.AdminTokenAsync());
        var before = await Server.Database.ScalarAsync("SELECT count(*) FROM users");
        var problem = await ProblemAssert.IsProblem(await admin.PostAsync("/api/admin/users", Json(json)), HttpStatusCode.BadRequest,
            field.StartsWith('$') ? Problems.MalformedRequest : Problems.Validation);
        Assert.Equal(field, problem.GetProperty("field").GetString());
        Assert.Equal(before, await Server.Database.ScalarAsync("SELECT count(*) FROM users"));
    }

    public static TheoryData<string, string> BadQuotaBodies => new()
    {
        { """{"max_vms":"7"}""", "$.max_vms" },
        { """{"max_vms":7,"max_vms":8}""", "$.max_vms" },
        { """{"MAX_VMS":7}""", "$.MAX_VMS" },
        { """{"max_vms":1e3}""", "$.max_vms" },
        { """{"max_vms":99999999999}""", "$.max_vms" },
    };

    [Theory]
    [MemberData(nameof(BadQuotaBodies))]
    public async Task Json_is_strict_numbers_are_numbers_names_match_exactly_and_duplicates_are_refused(string json, string field)
    {
        using var admin = Server.Client(await Server.AdminTokenAsync());
        var before = await Server.Database.ScalarAsync("SELECT count(*) FROM system_quota WHERE max_vms IS NOT NULL");
        var problem = await ProblemAssert.IsProblem(await admin.PutAsync("/api/admin/quota", Json(json)), HttpStatusCode.BadRequest, Problems.MalformedRequest);
        Assert.Equal(field, problem.GetProperty("field").GetString());
        AssertNoDotnetTypes(problem);
        Assert.Equal(before, await Server.Database.ScalarAsync("SELECT count(*) FROM system_quota WHERE max_vms IS NOT NULL"));
    }

    [Fact]
    public async Task Vm_names_with_a_nul_or_a_trailing_newline_and_snapshot_descriptions_with_a_nul_are_refused()
    {
        var (_, token) = await Server.CreateUserAsync("input-vm-owner");
        using var user = Server.Client(token);
        var image = await VmTestKit.RegisterBlankImageAsync(Server, "input-blank");
        foreach (var name in new[] { "web\u0000", "web\n", "\tweb" })
        {
            var body = JsonSerializer.Serialize(new { name, vcpus = 1, memory_mb = 128, disk_gb = 1, image_id = image });
            var response = await user.PostAsync("/api/vms", Json(body));
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            AssertRequestIdMatches(response, await ProblemAssert.Json(response));
        }

        var vm = await VmTestKit.CreateVmAsync(user, image, "input-vm");
        var vmId = vm.GetProperty("id").GetGuid();
        var snapshot = await user.PostAsync($"/api/vms/{vmId}/snapshots", Json("""{"name":"s1","description":"line one\nline two\u0000"}"""));
        var problem = await ProblemAssert.IsProblem(snapshot, HttpStatusCode.BadRequest, Problems.Validation);
        Assert.Equal("description", problem.GetProperty("field").GetString());
        var kept = await user.PostAsync($"/api/vms/{vmId}/snapshots", Json("""{"name":"s2","description":"line one\nline two\tand a tab"}"""));
        Assert.Equal(HttpStatusCode.Created, kept.StatusCode);
        Assert.Equal(1, await Server.Database.ScalarAsync($"SELECT count(*) FROM vms WHERE owner_id = (SELECT id FROM users WHERE username = 'input-vm-owner')"));
        Assert.Equal(1, await Server.Database.ScalarAsync($"SELECT count(*) FROM vm_snapshots WHERE vm_id = '{vmId}'"));
    }

    [Fact]
    public async Task A_patch_that_changes_nothing_is_a_200_no_op()
    {
        var (_, token) = await Server.CreateUserAsync("input-patch-owner");
        using var user = Server.Client(token);
        var image = await VmTestKit.RegisterBlankImageAsync(Server, "input-patch-blank");
        var vm = await VmTestKit.CreateVmAsync(user, image, "patch-me", vcpus: 1, memoryMb: 128);
        var vmId = vm.GetProperty("id").GetGuid();
        var stored = await ProblemAssert.Json(await user.GetAsync($"/api/vms/{vmId}"));
        var audited = await Server.Database.ScalarAsync($"SELECT count(*) FROM audit_logs WHERE target_id = '{vmId}'");

        var response = await user.PatchAsync($"/api/vms/{vmId}", Json("""{"vcpus":1,"memory_mb":128,"name":"patch-me"}"""));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await ProblemAssert.Json(response);
        Assert.Equal(stored.GetProperty("updated_at").GetDateTimeOffset(), body.GetProperty("updated_at").GetDateTimeOffset());
        Assert.Equal(audited, await Server.Database.ScalarAsync($"SELECT count(*) FROM audit_logs WHERE target_id = '{vmId}'"));
    }

    public static TheoryData<string, string> BadQueries => new()
    {
        { "/api/audit?action=vm.create%00", "action" },
        { "/api/audit?target_id=%00", "target_id" },
        { "/api/alerts?alertname=High%00", "alertname" },
        { "/api/vms?page=2147483647", "page" },
        { "/api/admin/users?page=2147483000&page_size=200", "page" },
        { "/api/audit?page_size=0", "page_size" },
        { "/api/vms?page=abc", "page" },
        { "/api/vms?page_size=1.5", "page_size" },
        { "/api/audit?from=yesterday", "from" },
        { "/api/audit?user_id=not-a-uuid", "user_id" },
    };

    [Theory]
    [MemberData(nameof(BadQueries))]
    public async Task Bad_query_values_are_400_naming_the_parameter_in_the_apis_words(string url, string field)
    {
        using var admin = Server.Client(await Server.AdminTokenAsync());
        var response = await admin.GetAsync(url);
        var problem = await ProblemAssert.IsProblem(response, HttpStatusCode.BadRequest,
            url.Contains("=abc") || url.Contains("1.5") || url.Contains("yesterday") || url.Contains("not-a-uuid") ? Problems.MalformedRequest : Problems.Validation);
        Assert.Equal(field, problem.GetProperty("field").GetString());
        AssertNoDotnetTypes(problem);
    }

    [Theory]
    [InlineData("+14:00")]
    [InlineData("-12:00")]
    [InlineData("+05:30")]
    [InlineData("Z")]
    public async Task Date_time_filters_accept_any_offset(string offset)
    {
        using var admin = Server.Client(await Server.AdminTokenAsync());
        var from = Uri.EscapeDataString("2026-01-01T00:00:00" + offset);
        var response = await admin.GetAsync($"/api/audit?from={from}&to={Uri.EscapeDataString("2999-01-01T00:00:00" + offset)}");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True((await ProblemAssert.Json(response)).GetProperty("total").GetInt32() >= 1);
    }

    [Fact]
    public async Task The_exception_handlers_answers_carry_x_request_id_too()
    {
        using var admin = Server.Client(await Server.AdminTokenAsync());
        // A binding 400 (wrong JSON type), a 415 for a body without Content-Type, a body-less 400.
        var wrongType = await admin.PutAsync($"/api/vms/{Guid.NewGuid()}/boot-order", Json("""{"devices":"hd"}"""));
        var problem = await ProblemAssert.IsProblem(wrongType, HttpStatusCode.BadRequest, Problems.MalformedRequest);
        AssertRequestIdMatches(wrongType, problem);
        AssertNoDotnetTypes(problem);
        Assert.Contains("an array", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);

        using var noType = new HttpRequestMessage(HttpMethod.Post, "/api/admin/users") { Content = new ByteArrayContent("{}"u8.ToArray()) };
        var unsupported = await admin.SendAsync(noType);
        AssertRequestIdMatches(unsupported, await ProblemAssert.IsProblem(unsupported, HttpStatusCode.UnsupportedMediaType, Problems.UnsupportedMediaType));

        var empty = await admin.PostAsync("/api/admin/users", Json(""));
        AssertRequestIdMatches(empty, await ProblemAssert.IsProblem(empty, HttpStatusCode.BadRequest, Problems.MalformedRequest));
    }

    private static void AssertRequestIdMatches(HttpResponseMessage response, JsonElement problem)
    {
        Assert.True(response.Headers.TryGetValues("X-Request-Id", out var ids), $"no X-Request-Id on {(int)response.StatusCode}");
        Assert.Equal(problem.GetProperty("request_id").GetString(), Assert.Single(ids));
    }

    private static void AssertNoDotnetTypes(JsonElement problem)
    {
        var detail = problem.GetProperty("detail").GetString() ?? "";
        foreach (var leak in new[] { "Nullable", "System.", "Limen.", "`1", "Int32", "IReadOnlyList" })
        {
            Assert.DoesNotContain(leak, detail, StringComparison.Ordinal);
        }
    }
}
