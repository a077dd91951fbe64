using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Limen.Tests.Infrastructure;
using Limen.Web;

namespace Limen.Tests.Registration;

/// <summary>
/// Self-registration with admin approval, through the API on a real server and database. The
/// tests of this class run one after another and each sets the registration setting it needs.
/// </summary>
public sealed class RegistrationApiTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private const string Password = "correct horse battery";

    private LimenTestServer Server => fixture.Server;

    public static TheoryData<string, string, HttpStatusCode, string?, string?> Attempts => new()
    {
        // username, password, status, problem type (null: 202), field
        { "reg-fine", Password, HttpStatusCode.Accepted, null, null },
        { "Reg-Upper", Password, HttpStatusCode.BadRequest, Problems.Validation, "username" },
        { "r", Password, HttpStatusCode.BadRequest, Problems.Validation, "username" },
        { "reg-short", "elevenchars", HttpStatusCode.BadRequest, Problems.Validation, "password" },
        { "reg-long", new string('p', 257), HttpStatusCode.BadRequest, Problems.Validation, "password" },
        { "admin", Password, HttpStatusCode.Conflict, Problems.Conflict, null },
    };

    [Theory]
    [MemberData(nameof(Attempts))]
    public async Task Open_registration_creates_a_pending_account_under_the_rules_for_admin_made_ones(
        string username, string password, HttpStatusCode status, string? type, string? field)
    {
        await SetOpenAsync(true);
        var before = await UsersNamedAsync(username);
        using var anonymous = Server.Client();
        var response = await anonymous.PostAsJsonAsync("/api/auth/register", new { username, password });

        if (type is null)
        {
            Assert.Equal(status, response.StatusCode);
            var body = await ProblemAssert.Json(response);
            var id = body.GetProperty("id").GetGuid();
            Assert.Equal(username, body.GetProperty("username").GetString());
            Assert.Equal("pending", body.GetProperty("status").GetString());
            Assert.Equal(1, await Server.Database.ScalarAsync($"SELECT count(*) FROM users WHERE id = '{id}' AND pending AND role = 'user'"));
            Assert.Equal(1, await Server.Database.ScalarAsync(
                $"SELECT count(*) FROM audit_logs WHERE action = 'user.register' AND result = 'success' AND target_id = '{id}' AND user_id = '{id}'"));
            Assert.Equal(1, await Server.Database.ScalarAsync(
                $"SELECT count(*) FROM events WHERE type = 'registration.created' AND owner_id IS NULL AND data->>'user_id' = '{id}'"));
            await RejectAsync(id);
            return;
        }

        var problem = await ProblemAssert.IsProblem(response, status, type);
        if (field is not null)
        {
            Assert.Equal(field, problem.GetProperty("field").GetString());
        }

        Assert.Equal(before, await UsersNamedAsync(username));
    }

    [Fact]
    public async Task Closed_registration_is_a_403_that_writes_no_account()
    {
        await SetOpenAsync(false);
        using var anonymous = Server.Client();
        var response = await anonymous.PostAsJsonAsync("/api/auth/register", new { username = "reg-closed", password = Password });
        var problem = await ProblemAssert.IsProblem(response, HttpStatusCode.Forbidden, Problems.RegistrationClosed);
        Assert.Contains("administrator", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(0, await UsersNamedAsync("reg-closed"));
        Assert.Equal(1, await Server.Database.ScalarAsync(
            "SELECT count(*) FROM audit_logs WHERE action = 'user.register' AND result = 'denied' AND error_code = 'registration_closed' " +
            $"AND request_id = '{problem.GetProperty("request_id").GetString()}'"));
    }

    [Fact]
    public async Task A_pending_account_hears_it_awaits_approval_only_with_the_right_password()
    {
        await SetOpenAsync(true);
        var id = await RegisterAsync("reg-waiting");
        using var anonymous = Server.Client();

        var right = await anonymous.PostAsJsonAsync("/api/auth/login", new { username = "reg-waiting", password = Password });
        var pending = await ProblemAssert.IsProblem(right, HttpStatusCode.Forbidden, Problems.PendingApproval);
        Assert.Contains("awaits an administrator's approval", pending.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.False(right.Headers.Contains("Set-Cookie"), "a pending account got a refresh cookie");
        Assert.Equal(1, await Server.Database.ScalarAsync(
            $"SELECT count(*) FROM audit_logs WHERE action = 'auth.login' AND result = 'failure' AND error_code = 'pending_approval' AND user_id = '{id}'"));

        // A wrong password must not tell that the account exists, let alone that it is pending.
        var wrong = await anonymous.PostAsJsonAsync("/api/auth/login", new { username = "reg-waiting", password = "not the password at all" });
        var unknown = await anonymous.PostAsJsonAsync("/api/auth/login", new { username = "reg-nobody", password = "not the password at all" });
        var wrongProblem = await ProblemAssert.IsProblem(wrong, HttpStatusCode.Unauthorized, Problems.Unauthorized);
        var unknownProblem = await ProblemAssert.IsProblem(unknown, HttpStatusCode.Unauthorized, Problems.Unauthorized);
        Assert.Equal(unknownProblem.GetProperty("detail").GetString(), wrongProblem.GetProperty("detail").GetString());

        // Closing registration later does not unlock or delete what waits.
        await SetOpenAsync(false);
        await ProblemAssert.IsProblem(await anonymous.PostAsJsonAsync("/api/auth/login", new { username = "reg-waiting", password = Password }),
            HttpStatusCode.Forbidden, Problems.PendingApproval);
        await RejectAsync(id);
    }

    [Fact]
    public async Task An_approved_account_signs_in_and_leaves_the_list()
    {
        await SetOpenAsync(true);
        var id = await RegisterAsync("reg-approved");
        using var admin = Server.Client(await Server.AdminTokenAsync());
        Assert.Contains(id, await PendingIdsAsync(admin));
        var listed = await ProblemAssert.Json(await admin.GetAsync($"/api/admin/users/{id}"));
        Assert.True(listed.GetProperty("pending").GetBoolean());

        var approved = await admin.PostAsync($"/api/admin/registrations/{id}/approve", null);
        Assert.Equal(HttpStatusCode.OK, approved.StatusCode);
        var user = await ProblemAssert.Json(approved);
        Assert.False(user.GetProperty("pending").GetBoolean());
        Assert.Equal("user", user.GetProperty("role").GetString());

        using var signedIn = Server.Client(await Server.LoginAsync("reg-approved", Password));
        Assert.Equal(id, (await ProblemAssert.Json(await signedIn.GetAsync("/api/auth/me"))).GetProperty("id").GetGuid());
        Assert.DoesNotContain(id, await PendingIdsAsync(admin));
        Assert.False((await ProblemAssert.Json(await admin.GetAsync($"/api/admin/users/{id}"))).GetProperty("pending").GetBoolean());
        Assert.Equal(1, await Server.Database.ScalarAsync(
            $"SELECT count(*) FROM audit_logs WHERE action = 'user.approve' AND result = 'success' AND target_id = '{id}'"));
        Assert.Equal(1, await Server.Database.ScalarAsync($"SELECT count(*) FROM events WHERE type = 'registration.approved' AND data->>'user_id' = '{id}'"));

        // Decided once: a second approval, or a rejection now, finds no registration.
        await ProblemAssert.IsProblem(await admin.PostAsync($"/api/admin/registrations/{id}/approve", null), HttpStatusCode.NotFound, Problems.NotFound);
        await ProblemAssert.IsProblem(await admin.PostAsync($"/api/admin/registrations/{id}/reject", null), HttpStatusCode.NotFound, Problems.NotFound);
        Assert.Equal(1, await UsersNamedAsync("reg-approved"));
        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync($"/api/admin/users/{id}")).StatusCode);
    }

    [Fact]
    public async Task Two_admins_approving_at_once_make_one_approval()
    {
        await SetOpenAsync(true);
        var id = await RegisterAsync("reg-raced");
        using var admin = Server.Client(await Server.AdminTokenAsync());
        var answers = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => admin.PostAsync($"/api/admin/registrations/{id}/approve", null)));
        Assert.Equal(1, answers.Count(a => a.StatusCode == HttpStatusCode.OK));
        Assert.Equal(3, answers.Count(a => a.StatusCode == HttpStatusCode.NotFound));
        Assert.Equal(1, await Server.Database.ScalarAsync($"SELECT count(*) FROM audit_logs WHERE action = 'user.approve' AND target_id = '{id}'"));
        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync($"/api/admin/users/{id}")).StatusCode);
    }

    [Fact]
    public async Task A_rejected_registration_is_gone_and_its_name_free()
    {
        await SetOpenAsync(true);
        var id = await RegisterAsync("reg-rejected");
        using var admin = Server.Client(await Server.AdminTokenAsync());
        Assert.Equal(HttpStatusCode.NoContent, (await admin.PostAsync($"/api/admin/registrations/{id}/reject", null)).StatusCode);

        Assert.Equal(0, await UsersNamedAsync("reg-rejected"));
        Assert.DoesNotContain(id, await PendingIdsAsync(admin));
        await ProblemAssert.IsProblem(await admin.GetAsync($"/api/admin/users/{id}"), HttpStatusCode.NotFound, Problems.NotFound);
        using var anonymous = Server.Client();
        await ProblemAssert.IsProblem(await anonymous.PostAsJsonAsync("/api/auth/login", new { username = "reg-rejected", password = Password }),
            HttpStatusCode.Unauthorized, Problems.Unauthorized);
        Assert.Equal(1, await Server.Database.ScalarAsync(
            $"SELECT count(*) FROM audit_logs WHERE action = 'user.reject' AND result = 'success' AND target_id = '{id}'"));
        await ProblemAssert.IsProblem(await admin.PostAsync($"/api/admin/registrations/{id}/reject", null), HttpStatusCode.NotFound, Problems.NotFound);

        var again = await RegisterAsync("reg-rejected");
        Assert.NotEqual(id, again);
        await RejectAsync(again);
    }

    [Fact]
    public async Task Approve_and_reject_refuse_an_account_that_is_no_registration()
    {
        var (id, _) = await Server.CreateUserAsync("reg-ordinary");
        using var admin = Server.Client(await Server.AdminTokenAsync());
        await ProblemAssert.IsProblem(await admin.PostAsync($"/api/admin/registrations/{id}/approve", null), HttpStatusCode.NotFound, Problems.NotFound);
        await ProblemAssert.IsProblem(await admin.PostAsync($"/api/admin/registrations/{id}/reject", null), HttpStatusCode.NotFound, Problems.NotFound);
        Assert.Equal(1, await UsersNamedAsync("reg-ordinary"));
        Assert.DoesNotContain(id, await PendingIdsAsync(admin));
    }

    public static TheoryData<string, string, string?> AdminCalls => new()
    {
        { "GET", "/api/admin/registrations", null },
        { "POST", "/api/admin/registrations/{pending}/approve", null },
        { "POST", "/api/admin/registrations/{pending}/reject", null },
        { "GET", "/api/admin/settings", null },
        { "PUT", "/api/admin/settings", """{"registration_open":false}""" },
    };

    [Theory]
    [MemberData(nameof(AdminCalls))]
    public async Task Only_admins_may_call_the_admin_endpoints(string method, string path, string? body)
    {
        await SetOpenAsync(true);
        var pending = await RegisterAsync("reg-" + Guid.NewGuid().ToString("N")[..12]);
        var (userId, token) = await Server.CreateUserAsync("reg-u-" + Guid.NewGuid().ToString("N")[..12]);
        using var user = Server.Client(token);
        using var anonymous = Server.Client();
        foreach (var (client, status, type) in new[] { (user, HttpStatusCode.Forbidden, Problems.Forbidden), (anonymous, HttpStatusCode.Unauthorized, Problems.Unauthorized) })
        {
            using var request = new HttpRequestMessage(new HttpMethod(method), path.Replace("{pending}", pending.ToString(), StringComparison.Ordinal));
            if (body is not null)
            {
                request.Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json");
            }

            await ProblemAssert.IsProblem(await client.SendAsync(request), status, type);
        }

        Assert.True(await Server.Database.ScalarAsync($"SELECT count(*) FROM users WHERE id = '{pending}' AND pending") == 1, "the registration was decided");
        Assert.True(await OpenAsync(), "registration was closed by a refused call");
        await RejectAsync(pending);
        using var admin = Server.Client(await Server.AdminTokenAsync());
        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync($"/api/admin/users/{userId}")).StatusCode);
    }

    [Fact]
    public async Task A_settings_put_that_changes_nothing_writes_nothing()
    {
        await SetOpenAsync(true);
        using var admin = Server.Client(await Server.AdminTokenAsync());
        var before = await ProblemAssert.Json(await admin.GetAsync("/api/admin/settings"));
        var audits = await Server.Database.ScalarAsync("SELECT count(*) FROM audit_logs WHERE action = 'settings.change'");
        var events = await Server.Database.ScalarAsync("SELECT count(*) FROM events WHERE type = 'settings.changed'");

        foreach (var body in new object[] { new { registration_open = true }, new { }, new { registration_open = (bool?)null } })
        {
            var same = await ProblemAssert.Json(await admin.PutAsJsonAsync("/api/admin/settings", body));
            Assert.True(same.GetProperty("registration_open").GetBoolean());
            Assert.Equal(before.GetProperty("updated_at").GetString(), same.GetProperty("updated_at").GetString());
        }

        Assert.Equal(audits, await Server.Database.ScalarAsync("SELECT count(*) FROM audit_logs WHERE action = 'settings.change'"));
        Assert.Equal(events, await Server.Database.ScalarAsync("SELECT count(*) FROM events WHERE type = 'settings.changed'"));

        var closing = await admin.PutAsJsonAsync("/api/admin/settings", new { registration_open = false });
        Assert.False((await ProblemAssert.Json(closing)).GetProperty("registration_open").GetBoolean());
        Assert.Equal(audits + 1, await Server.Database.ScalarAsync("SELECT count(*) FROM audit_logs WHERE action = 'settings.change'"));
        Assert.Equal(1, await Server.Database.ScalarAsync(
            $"SELECT count(*) FROM audit_logs WHERE action = 'settings.change' AND request_id = '{closing.Headers.GetValues("X-Request-Id").Single()}' " +
            "AND details->'before'->>'registration_open' = 'true' AND details->'after'->>'registration_open' = 'false'"));
        Assert.Equal(events + 1, await Server.Database.ScalarAsync("SELECT count(*) FROM events WHERE type = 'settings.changed' AND owner_id IS NULL"));
        Assert.False((await ProblemAssert.Json(await admin.GetAsync("/api/admin/settings"))).GetProperty("registration_open").GetBoolean());
    }

    [Theory]
    [InlineData("""{"registration_open":"true"}""", "$.registration_open")]
    [InlineData("""{"registration_open":1}""", "$.registration_open")]
    [InlineData("""{"registration":true}""", "$.registration")]
    public async Task A_bad_settings_body_is_a_400_naming_the_member_and_changes_nothing(string body, string field)
    {
        await SetOpenAsync(false);
        using var admin = Server.Client(await Server.AdminTokenAsync());
        var response = await admin.PutAsync("/api/admin/settings", new StringContent(body, System.Text.Encoding.UTF8, "application/json"));
        var problem = await ProblemAssert.IsProblem(response, HttpStatusCode.BadRequest, Problems.MalformedRequest);
        Assert.Equal(field, problem.GetProperty("field").GetString());
        Assert.False(await OpenAsync());
    }

    private async Task SetOpenAsync(bool open)
    {
        using var admin = Server.Client(await Server.AdminTokenAsync());
        var response = await admin.PutAsJsonAsync("/api/admin/settings", new { registration_open = open });
        Assert.Equal(open, (await ProblemAssert.Json(response)).GetProperty("registration_open").GetBoolean());
    }

    private async Task<bool> OpenAsync() => await Server.Database.ScalarAsync("SELECT count(*) FROM system_settings WHERE registration_open") == 1;

    private async Task<Guid> RegisterAsync(string username)
    {
        using var anonymous = Server.Client();
        var response = await anonymous.PostAsJsonAsync("/api/auth/register", new { username, password = Password });
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"register {username}: {(int)response.StatusCode} {body}");
        return JsonDocument.Parse(body).RootElement.GetProperty("id").GetGuid();
    }

    private async Task RejectAsync(Guid id)
    {
        using var admin = Server.Client(await Server.AdminTokenAsync());
        Assert.Equal(HttpStatusCode.NoContent, (await admin.PostAsync($"/api/admin/registrations/{id}/reject", null)).StatusCode);
    }

    private Task<long> UsersNamedAsync(string username) => Server.Database.ScalarAsync($"SELECT count(*) FROM users WHERE username = '{username}'");

    private static async Task<List<Guid>> PendingIdsAsync(HttpClient admin)
    {
        var page = await ProblemAssert.Json(await admin.GetAsync("/api/admin/registrations?page_size=200"));
        var items = page.GetProperty("items").EnumerateArray().ToList();
        Assert.All(items, i => Assert.Equal("pending", i.GetProperty("status").GetString()));
        return items.Select(i => i.GetProperty("id").GetGuid()).ToList();
    }
}

/// <summary>What needs a server of its own: the default of a fresh installation, and a tight client budget.</summary>
public sealed class RegistrationDefaultsTests
{
    [Fact]
    public async Task A_new_installation_is_closed_and_registrations_share_the_clients_login_budget()
    {
        await using var server = await LimenTestServer.StartAsync(new Dictionary<string, string?>
        {
            ["Limen:Auth:LoginAttemptsPerIpPerMinute"] = "3",
        });
        using var anonymous = server.Client();
        await ProblemAssert.IsProblem(await anonymous.PostAsJsonAsync("/api/auth/register", new { username = "reg-first", password = "correct horse battery" }),
            HttpStatusCode.Forbidden, Problems.RegistrationClosed);
        Assert.Equal(1, await server.Database.ScalarAsync("SELECT count(*) FROM system_settings WHERE id = 1 AND NOT registration_open"));

        // Opened behind the API's back: an admin's sign-in would take from the same client budget.
        await server.Database.ScalarAsync("UPDATE system_settings SET registration_open = true RETURNING 1");
        Assert.Equal(HttpStatusCode.Accepted, (await anonymous.PostAsJsonAsync("/api/auth/register", new { username = "reg-second", password = "correct horse battery" })).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.PostAsJsonAsync("/api/auth/login", new { username = "reg-second", password = "wrong password here" })).StatusCode);

        var limited = await anonymous.PostAsJsonAsync("/api/auth/register", new { username = "reg-third", password = "correct horse battery" });
        await ProblemAssert.IsProblem(limited, HttpStatusCode.TooManyRequests, Problems.RateLimited);
        Assert.True(int.Parse(limited.Headers.GetValues("Retry-After").Single(), System.Globalization.CultureInfo.InvariantCulture) is > 0 and <= 60);
        Assert.Equal(0, await server.Database.ScalarAsync("SELECT count(*) FROM users WHERE username = 'reg-third'"));
        Assert.Equal(1, await server.Database.ScalarAsync("SELECT count(*) FROM audit_logs WHERE action = 'user.register' AND error_code = 'rate_limited'"));
    }
}
