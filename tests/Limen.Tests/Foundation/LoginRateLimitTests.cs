using System.Net;
using System.Net.Http.Json;
using Limen.Tests.Infrastructure;
using Limen.Web;

namespace Limen.Tests.Foundation;

public sealed class LoginRateLimitTests
{
    [Fact]
    public async Task Too_many_attempts_for_one_username_get_429_with_retry_after_and_are_counted()
    {
        await using var server = await LimenTestServer.StartAsync(new Dictionary<string, string?>
        {
            ["Limen:Auth:LoginAttemptsPerUserPerMinute"] = "3",
        });
        using var client = server.Client();
        for (var i = 0; i < 3; i++)
        {
            var attempt = await client.PostAsJsonAsync("/api/auth/login", new { username = "admin", password = "wrong password " + i });
            Assert.Equal(HttpStatusCode.Unauthorized, attempt.StatusCode);
        }

        // Even the right password is refused while the window is closed.
        var limited = await client.PostAsJsonAsync("/api/auth/login", new { username = "admin", password = server.AdminPassword });
        await ProblemAssert.IsProblem(limited, HttpStatusCode.TooManyRequests, Problems.RateLimited);
        Assert.True(int.Parse(limited.Headers.GetValues("Retry-After").Single(), System.Globalization.CultureInfo.InvariantCulture) is > 0 and <= 60);

        var metrics = await server.MetricsAsync();
        Assert.Equal(1, ProblemAssert.Sample(metrics, "auth_failure_total", "reason=\"rate_limited\""));
        Assert.Equal(1, ProblemAssert.Sample(metrics, "http_requests_total", "method=\"POST\",route=\"/api/auth/login\",status=\"429\""));
        Assert.Equal(1, await server.Database.ScalarAsync("SELECT count(*) FROM audit_logs WHERE action = 'auth.login' AND result = 'denied'"));
        // Another account from the same client is still served.
        var other = await client.PostAsJsonAsync("/api/auth/login", new { username = "someone-else", password = "wrong password" });
        Assert.Equal(HttpStatusCode.Unauthorized, other.StatusCode);
    }

    [Fact]
    public async Task Too_many_attempts_from_one_client_ip_get_429_across_usernames()
    {
        await using var server = await LimenTestServer.StartAsync(new Dictionary<string, string?>
        {
            ["Limen:Auth:LoginAttemptsPerIpPerMinute"] = "4",
        });
        using var client = server.Client();
        for (var i = 0; i < 4; i++)
        {
            var attempt = await client.PostAsJsonAsync("/api/auth/login", new { username = "user" + i, password = "wrong password" });
            Assert.Equal(HttpStatusCode.Unauthorized, attempt.StatusCode);
        }

        var limited = await client.PostAsJsonAsync("/api/auth/login", new { username = "user9", password = "wrong password" });
        await ProblemAssert.IsProblem(limited, HttpStatusCode.TooManyRequests, Problems.RateLimited);
    }

    [Fact]
    public async Task X_forwarded_for_is_ignored_unless_the_sender_is_a_trusted_proxy()
    {
        await using var untrusted = await LimenTestServer.StartAsync();
        await using var trusted = await LimenTestServer.StartAsync(new Dictionary<string, string?> { ["Limen:TrustedProxies:0"] = "127.0.0.1" });

        foreach (var (server, expectedIp) in new[] { (untrusted, "127.0.0.1"), (trusted, "203.0.113.7") })
        {
            using var client = server.Client();
            using var request = new HttpRequestMessage(HttpMethod.Post, "/api/auth/login")
            {
                Content = JsonContent.Create(new { username = "admin", password = "wrong password here" }),
            };
            request.Headers.Add("X-Forwarded-For", "203.0.113.7");
            await client.SendAsync(request);
            Assert.Equal(1, await server.Database.ScalarAsync($"SELECT count(*) FROM audit_logs WHERE action = 'auth.login' AND client_ip = '{expectedIp}'"));
        }
    }
}
