using System.Net;
using System.Net.Http.Json;
using Limen.Tests.Infrastructure;
using Limen.Web;

namespace Limen.Tests.Foundation;

public sealed class UserAdminTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private LimenTestServer Server => fixture.Server;

    [Fact]
    public async Task Admin_creates_gets_lists_promotes_resets_and_deletes_a_user()
    {
        using var admin = Server.Client(await Server.AdminTokenAsync());
        var created = await admin.PostAsJsonAsync("/api/admin/users", new { username = "lifecycle", password = "twelve chars ok" });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var user = await ProblemAssert.Json(created);
        var id = user.GetProperty("id").GetGuid();
        Assert.Equal("user", user.GetProperty("role").GetString());
        Assert.Equal($"/api/admin/users/{id}", created.Headers.Location?.ToString());

        Assert.Equal("lifecycle", (await ProblemAssert.Json(await admin.GetAsync($"/api/admin/users/{id}"))).GetProperty("username").GetString());
        var page = await ProblemAssert.Json(await admin.GetAsync("/api/admin/users?page=1&page_size=1"));
        Assert.Equal(1, page.GetProperty("items").GetArrayLength());
        Assert.True(page.GetProperty("total").GetInt32() >= 2);

        var promoted = await ProblemAssert.Json(await admin.PatchAsJsonAsync($"/api/admin/users/{id}", new { role = "admin" }));
        Assert.Equal("admin", promoted.GetProperty("role").GetString());

        Assert.Equal(HttpStatusCode.NoContent, (await admin.PostAsJsonAsync($"/api/admin/users/{id}/password", new { password = "a reset passphrase" })).StatusCode);
        Assert.NotEmpty(await Server.LoginAsync("lifecycle", "a reset passphrase"));

        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync($"/api/admin/users/{id}")).StatusCode);
        await ProblemAssert.IsProblem(await admin.GetAsync($"/api/admin/users/{id}"), HttpStatusCode.NotFound, Problems.NotFound);
        foreach (var action in new[] { "user.create", "user.update", "user.password.reset", "user.delete" })
        {
            Assert.Equal(1, await Server.Database.ScalarAsync(
                $"SELECT count(*) FROM audit_logs WHERE action = '{action}' AND target_id = '{id}' AND result = 'success'"));
        }
    }

    [Fact]
    public async Task Disable_and_enable_toggle_login()
    {
        var (id, _) = await Server.CreateUserAsync("toggled");
        using var admin = Server.Client(await Server.AdminTokenAsync());
        await admin.PatchAsJsonAsync($"/api/admin/users/{id}", new { disabled = true });
        using var anonymous = Server.Client();
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.PostAsJsonAsync("/api/auth/login", new { username = "toggled", password = "correct horse battery" })).StatusCode);
        await admin.PatchAsJsonAsync($"/api/admin/users/{id}", new { disabled = false });
        Assert.NotEmpty(await Server.LoginAsync("toggled", "correct horse battery"));
    }

    [Fact]
    public async Task An_admin_cannot_delete_demote_or_disable_themself()
    {
        var adminToken = await Server.AdminTokenAsync();
        using var admin = Server.Client(adminToken);
        var me = await ProblemAssert.Json(await admin.GetAsync("/api/auth/me"));
        var myId = me.GetProperty("id").GetGuid();
        await ProblemAssert.IsProblem(await admin.DeleteAsync($"/api/admin/users/{myId}"), HttpStatusCode.Conflict, Problems.Conflict);
        await ProblemAssert.IsProblem(await admin.PatchAsJsonAsync($"/api/admin/users/{myId}", new { role = "user" }), HttpStatusCode.Conflict, Problems.Conflict);
        await ProblemAssert.IsProblem(await admin.PatchAsJsonAsync($"/api/admin/users/{myId}", new { disabled = true }), HttpStatusCode.Conflict, Problems.Conflict);
        Assert.Equal("admin", (await ProblemAssert.Json(await admin.GetAsync("/api/auth/me"))).GetProperty("role").GetString());
    }

    [Fact]
    public async Task A_user_calling_an_admin_endpoint_gets_403_and_an_audit_row()
    {
        var (id, token) = await Server.CreateUserAsync("curious");
        using var user = Server.Client(token);
        await ProblemAssert.IsProblem(await user.GetAsync("/api/admin/users"), HttpStatusCode.Forbidden, Problems.Forbidden);
        var created = await user.PostAsJsonAsync("/api/admin/users", new { username = "sneaky", password = "twelve chars ok" });
        await ProblemAssert.IsProblem(created, HttpStatusCode.Forbidden, Problems.Forbidden);

        Assert.Equal(2, await Server.Database.ScalarAsync(
            $"SELECT count(*) FROM audit_logs WHERE action = 'authz.denied' AND user_id = '{id}' AND result = 'denied'"));
        Assert.Equal(0, await Server.Database.ScalarAsync("SELECT count(*) FROM users WHERE username = 'sneaky'"));
    }

    public static TheoryData<string, string, string> BadUsers => new()
    {
        { "{\"username\":\"ab\",\"password\":\"twelve chars ok\"}", "username", "too short username" },
        { "{\"username\":\"ädmin\",\"password\":\"twelve chars ok\"}", "username", "unicode" },
        { "{\"username\":\"evil\\u0000name\",\"password\":\"twelve chars ok\"}", "username", "control character" },
        { "{\"username\":\"new\\nline\",\"password\":\"twelve chars ok\"}", "username", "newline" },
        { "{\"username\":\"Upper\",\"password\":\"twelve chars ok\"}", "username", "upper case" },
        { "{\"username\":\"shortpw\",\"password\":\"eleven char\"}", "password", "11-character password" },
        { "{\"username\":\"badrole\",\"password\":\"twelve chars ok\",\"role\":\"root\"}", "role", "unknown role" },
    };

    [Theory]
    [MemberData(nameof(BadUsers))]
    public async Task Invalid_users_are_refused_with_a_validation_problem_and_nothing_is_created(string json, string field, string why)
    {
        using var admin = Server.Client(await Server.AdminTokenAsync());
        var before = await Server.Database.ScalarAsync("SELECT count(*) FROM users");
        var response = await admin.PostAsync("/api/admin/users", new StringContent(json, System.Text.Encoding.UTF8, "application/json"));
        var problem = await ProblemAssert.IsProblem(response, HttpStatusCode.BadRequest, Problems.Validation);
        Assert.True(field == problem.GetProperty("field").GetString(), why);
        Assert.Equal(before, await Server.Database.ScalarAsync("SELECT count(*) FROM users"));
    }

    [Fact]
    public async Task A_taken_username_is_a_conflict()
    {
        await Server.CreateUserAsync("twin");
        using var admin = Server.Client(await Server.AdminTokenAsync());
        var again = await admin.PostAsJsonAsync("/api/admin/users", new { username = "twin", password = "twelve chars ok" });
        await ProblemAssert.IsProblem(again, HttpStatusCode.Conflict, Problems.Conflict);
    }
}
