using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using Limen.Features.Auth;
using Limen.Tests.Infrastructure;
using Limen.Web;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Limen.Tests.Foundation;

public sealed class AuthTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private LimenTestServer Server => fixture.Server;

    [Fact]
    public async Task Login_returns_a_900_second_bearer_token_that_me_accepts_and_a_strict_http_only_refresh_cookie()
    {
        using var client = Server.Client();
        var response = await client.PostAsJsonAsync("/api/auth/login", new { username = "admin", password = Server.AdminPassword });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await ProblemAssert.Json(response);
        Assert.Equal(900, body.GetProperty("expires_in").GetInt32());
        Assert.Equal("Bearer", body.GetProperty("token_type").GetString());
        var cookie = Assert.Single(response.Headers.GetValues("Set-Cookie"));
        Assert.StartsWith(AuthEndpoints.RefreshCookie + "=", cookie, StringComparison.Ordinal);
        Assert.Contains("httponly", cookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("samesite=strict", cookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("path=/api/auth", cookie, StringComparison.OrdinalIgnoreCase);

        using var authed = Server.Client(body.GetProperty("access_token").GetString());
        var me = await ProblemAssert.Json(await authed.GetAsync("/api/auth/me"));
        Assert.Equal("admin", me.GetProperty("username").GetString());
        Assert.Equal("admin", me.GetProperty("role").GetString());
    }

    [Fact]
    public async Task Unknown_user_and_wrong_password_get_the_same_problem_and_are_counted_and_audited()
    {
        var before = ProblemAssert.Sample(await Server.MetricsAsync(), "auth_failure_total", "reason=\"invalid_credentials\"");
        using var client = Server.Client();
        var wrongPassword = await client.PostAsJsonAsync("/api/auth/login", new { username = "admin", password = "not the password at all" });
        var unknownUser = await client.PostAsJsonAsync("/api/auth/login", new { username = "nobody-here", password = "not the password at all" });

        var a = await ProblemAssert.IsProblem(wrongPassword, HttpStatusCode.Unauthorized, Problems.Unauthorized);
        var b = await ProblemAssert.IsProblem(unknownUser, HttpStatusCode.Unauthorized, Problems.Unauthorized);
        Assert.Equal(a.GetProperty("title").GetString(), b.GetProperty("title").GetString());
        Assert.Equal(a.GetProperty("detail").GetString(), b.GetProperty("detail").GetString());

        var after = ProblemAssert.Sample(await Server.MetricsAsync(), "auth_failure_total", "reason=\"invalid_credentials\"");
        Assert.Equal(before + 2, after);
        Assert.True(await Server.Database.ScalarAsync(
            "SELECT count(*) FROM audit_logs WHERE action = 'auth.login' AND result = 'failure' AND username = 'nobody-here'") >= 1);
    }

    [Fact]
    public async Task Refresh_rotates_and_a_reused_refresh_token_revokes_the_whole_family()
    {
        var (_, _) = await Server.CreateUserAsync("rotator");
        using var client = Server.Client();
        var reusesBefore = ProblemAssert.Sample(await Server.MetricsAsync(), "auth_failure_total", "reason=\"refresh_token_reuse\"");
        var login = await client.PostAsJsonAsync("/api/auth/login", new { username = "rotator", password = "correct horse battery" });
        var first = RefreshCookie(login);

        var rotated = await RefreshAsync(client, first);
        Assert.Equal(HttpStatusCode.OK, rotated.StatusCode);
        var second = RefreshCookie(rotated);
        Assert.NotEqual(first, second);

        // Only the hash is stored.
        Assert.Equal(0, await Server.Database.ScalarAsync($"SELECT count(*) FROM refresh_tokens WHERE token_hash = '{first}'"));
        Assert.Equal(1, await Server.Database.ScalarAsync($"SELECT count(*) FROM refresh_tokens WHERE token_hash = '{RefreshTokens.Hash(first)}'"));

        var reuse = await RefreshAsync(client, first);
        await ProblemAssert.IsProblem(reuse, HttpStatusCode.Unauthorized, Problems.Unauthorized);
        // The thief's reuse also ends the legitimate holder's newer token.
        var afterRevocation = await RefreshAsync(client, second);
        await ProblemAssert.IsProblem(afterRevocation, HttpStatusCode.Unauthorized, Problems.Unauthorized);
        Assert.Equal(reusesBefore + 1, ProblemAssert.Sample(await Server.MetricsAsync(), "auth_failure_total", "reason=\"refresh_token_reuse\""));
    }

    [Fact]
    public async Task Logout_revokes_the_refresh_token()
    {
        using var client = Server.Client();
        var login = await client.PostAsJsonAsync("/api/auth/login", new { username = "admin", password = Server.AdminPassword });
        var secret = RefreshCookie(login);
        using var logout = new HttpRequestMessage(HttpMethod.Post, "/api/auth/logout");
        logout.Headers.Add("Cookie", $"{AuthEndpoints.RefreshCookie}={secret}");
        Assert.Equal(HttpStatusCode.NoContent, (await client.SendAsync(logout)).StatusCode);

        await ProblemAssert.IsProblem(await RefreshAsync(client, secret), HttpStatusCode.Unauthorized, Problems.Unauthorized);
    }

    public static TheoryData<string> ForgedTokenKinds => ["tampered", "expired", "wrong-audience", "alg-none", "refresh-type", "other-key", "garbage"];

    [Theory]
    [MemberData(nameof(ForgedTokenKinds))]
    public async Task Forged_or_foreign_tokens_are_refused(string kind)
    {
        var admin = await Server.LoginAsync("admin", Server.AdminPassword);
        var before = ProblemAssert.Sample(await Server.MetricsAsync(), "auth_failure_total", "reason=\"invalid_token\"");
        var token = kind switch
        {
            "tampered" => Tamper(admin),
            "expired" => Sign(OwnKey(), expires: DateTime.UtcNow.AddMinutes(-10), subject: AdminId(admin)),
            "wrong-audience" => Sign(OwnKey(), audience: "limen-console", subject: AdminId(admin)),
            "alg-none" => Unsigned(AdminId(admin)),
            "refresh-type" => Sign(OwnKey(), type: "rt+jwt", subject: AdminId(admin)),
            "other-key" => Sign(new ECDsaSecurityKey(ECDsa.Create(ECCurve.NamedCurves.nistP256)), subject: AdminId(admin)),
            _ => "not-a-jwt",
        };

        using var client = Server.Client(token);
        await ProblemAssert.IsProblem(await client.GetAsync("/api/auth/me"), HttpStatusCode.Unauthorized, Problems.Unauthorized);
        Assert.True(ProblemAssert.Sample(await Server.MetricsAsync(), "auth_failure_total", "reason=\"invalid_token\"") > before);
    }

    [Fact]
    public async Task A_correctly_signed_token_built_the_same_way_is_accepted_so_the_forgery_cases_are_meaningful()
    {
        var admin = await Server.LoginAsync("admin", Server.AdminPassword);
        using var client = Server.Client(Sign(OwnKey(), subject: AdminId(admin)));
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/api/auth/me")).StatusCode);
    }

    [Fact]
    public async Task Disabling_a_user_stops_their_existing_access_token()
    {
        var (id, token) = await Server.CreateUserAsync("soon-disabled");
        using var user = Server.Client(token);
        Assert.Equal(HttpStatusCode.OK, (await user.GetAsync("/api/auth/me")).StatusCode);

        using var admin = Server.Client(await Server.AdminTokenAsync());
        Assert.Equal(HttpStatusCode.OK, (await admin.PatchAsJsonAsync($"/api/admin/users/{id}", new { disabled = true })).StatusCode);

        await ProblemAssert.IsProblem(await user.GetAsync("/api/auth/me"), HttpStatusCode.Unauthorized, Problems.Unauthorized);
        using var anonymous = Server.Client();
        var login = await anonymous.PostAsJsonAsync("/api/auth/login", new { username = "soon-disabled", password = "correct horse battery" });
        await ProblemAssert.IsProblem(login, HttpStatusCode.Unauthorized, Problems.Unauthorized);
    }

    [Fact]
    public async Task Users_change_their_own_password_with_the_current_one()
    {
        var (_, token) = await Server.CreateUserAsync("changer");
        using var user = Server.Client(token);
        var wrong = await user.PostAsJsonAsync("/api/auth/me/password", new { current_password = "wrong wrong wrong", new_password = "a brand new passphrase" });
        await ProblemAssert.IsProblem(wrong, HttpStatusCode.Forbidden, Problems.Forbidden);
        var tooShort = await user.PostAsJsonAsync("/api/auth/me/password", new { current_password = "correct horse battery", new_password = "short" });
        await ProblemAssert.IsProblem(tooShort, HttpStatusCode.BadRequest, Problems.Validation);

        var ok = await user.PostAsJsonAsync("/api/auth/me/password", new { current_password = "correct horse battery", new_password = "a brand new passphrase" });
        Assert.Equal(HttpStatusCode.NoContent, ok.StatusCode);
        Assert.NotEmpty(await Server.LoginAsync("changer", "a brand new passphrase"));
    }

    private static async Task<HttpResponseMessage> RefreshAsync(HttpClient client, string secret)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/auth/refresh");
        request.Headers.Add("Cookie", $"{AuthEndpoints.RefreshCookie}={secret}");
        return await client.SendAsync(request);
    }

    private static string RefreshCookie(HttpResponseMessage response)
    {
        var cookie = response.Headers.GetValues("Set-Cookie").Single(c => c.StartsWith(AuthEndpoints.RefreshCookie + "=", StringComparison.Ordinal));
        return cookie.Split(';')[0][(AuthEndpoints.RefreshCookie.Length + 1)..];
    }

    private ECDsaSecurityKey OwnKey()
    {
        var ecdsa = ECDsa.Create();
        ecdsa.ImportFromPem(File.ReadAllText(Path.Combine(Server.StateDir, SigningKeyStore.FileName)));
        return new ECDsaSecurityKey(ecdsa);
    }

    private static string AdminId(string token) => new JsonWebToken(token).Subject;

    private static string Tamper(string token)
    {
        var parts = token.Split('.');
        var payload = Base64UrlEncoder.Decode(parts[1]).Replace("\"role\":\"admin\"", "\"role\":\"root\"", StringComparison.Ordinal);
        return $"{parts[0]}.{Base64UrlEncoder.Encode(payload)}.{parts[2]}";
    }

    private static string Sign(SecurityKey key, string subject, DateTime? expires = null, string audience = AccessTokens.Audience, string type = AccessTokens.TokenType)
    {
        var expiry = expires ?? DateTime.UtcNow.AddMinutes(5);
        return new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(new SecurityTokenDescriptor
        {
            Issuer = AccessTokens.Issuer,
            Audience = audience,
            TokenType = type,
            IssuedAt = expiry.AddMinutes(-15),
            NotBefore = expiry.AddMinutes(-15),
            Expires = expiry,
            Claims = new Dictionary<string, object> { ["sub"] = subject, ["name"] = "admin", ["role"] = "admin" },
            SigningCredentials = new SigningCredentials(key, SecurityAlgorithms.EcdsaSha256),
        });
    }

    private static string Unsigned(string subject)
    {
        var header = Base64UrlEncoder.Encode("{\"alg\":\"none\",\"typ\":\"at+jwt\"}");
        var exp = DateTimeOffset.UtcNow.AddMinutes(5).ToUnixTimeSeconds();
        var payload = Base64UrlEncoder.Encode($"{{\"iss\":\"limen\",\"aud\":\"limen-api\",\"sub\":\"{subject}\",\"role\":\"admin\",\"exp\":{exp}}}");
        return $"{header}.{payload}.";
    }
}
