using System.Net;
using System.Net.Http.Json;
using Limen.Tests.Infrastructure;
using Limen.Web;

namespace Limen.Tests.Foundation;

public sealed class AuditTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private LimenTestServer Server => fixture.Server;

    [Fact]
    public async Task A_mutation_is_audited_with_actor_request_id_client_ip_and_user_agent()
    {
        using var admin = Server.Client(await Server.AdminTokenAsync());
        admin.DefaultRequestHeaders.UserAgent.ParseAdd("limen-tests/1.0");
        var response = await admin.PostAsJsonAsync("/api/admin/users", new { username = "audited", password = "twelve chars ok" });
        var requestId = response.Headers.GetValues("X-Request-Id").Single();
        var id = (await ProblemAssert.Json(response)).GetProperty("id").GetString();

        var page = await ProblemAssert.Json(await admin.GetAsync($"/api/audit?action=user.create&target_id={id}"));
        var row = Assert.Single(page.GetProperty("items").EnumerateArray());
        Assert.Equal(requestId, row.GetProperty("request_id").GetString());
        Assert.Equal("admin", row.GetProperty("username").GetString());
        Assert.Equal("success", row.GetProperty("result").GetString());
        Assert.Equal("127.0.0.1", row.GetProperty("client_ip").GetString());
        Assert.Equal("limen-tests/1.0", row.GetProperty("user_agent").GetString());
        Assert.Equal("audited", row.GetProperty("details").GetProperty("username").GetString());
        Assert.DoesNotContain("twelve chars ok", row.GetRawText(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Users_see_only_their_own_rows_and_admins_filter_everything()
    {
        var (aliceId, aliceToken) = await Server.CreateUserAsync("alice-audit");
        var (_, bobToken) = await Server.CreateUserAsync("bob-audit");
        using var alice = Server.Client(aliceToken);
        using var bob = Server.Client(bobToken);
        await bob.GetAsync("/api/admin/users"); // a denied act of bob's

        var own = await ProblemAssert.Json(await alice.GetAsync($"/api/audit?user_id={Guid.NewGuid()}"));
        Assert.All(own.GetProperty("items").EnumerateArray(), row => Assert.Equal(aliceId, row.GetProperty("user_id").GetGuid()));
        Assert.True(own.GetProperty("total").GetInt32() >= 1); // alice's own login, despite the foreign user_id filter

        using var admin = Server.Client(await Server.AdminTokenAsync());
        var denied = await ProblemAssert.Json(await admin.GetAsync("/api/audit?result=denied&action=authz.denied"));
        Assert.Contains(denied.GetProperty("items").EnumerateArray(), row => row.GetProperty("username").GetString() == "bob-audit");

        var future = Uri.EscapeDataString(DateTimeOffset.UtcNow.AddHours(1).ToString("O"));
        var none = await ProblemAssert.Json(await admin.GetAsync($"/api/audit?from={future}"));
        Assert.Equal(0, none.GetProperty("total").GetInt32());
        var paged = await ProblemAssert.Json(await admin.GetAsync("/api/audit?page=2&page_size=1"));
        Assert.Equal(1, paged.GetProperty("items").GetArrayLength());
    }

    [Fact]
    public async Task Bad_filters_are_400()
    {
        using var admin = Server.Client(await Server.AdminTokenAsync());
        await ProblemAssert.IsProblem(await admin.GetAsync("/api/audit?page_size=100000"), HttpStatusCode.BadRequest, Problems.Validation);
        await ProblemAssert.IsProblem(await admin.GetAsync("/api/audit?from=yesterday"), HttpStatusCode.BadRequest, Problems.MalformedRequest);
        await ProblemAssert.IsProblem(await admin.GetAsync("/api/audit?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z"), HttpStatusCode.BadRequest, Problems.Validation);
    }
}
