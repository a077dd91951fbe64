using System.Net;
using System.Net.Http.Headers;
using Limen.Features.Metrics;
using Limen.Tests.Infrastructure;
using Limen.Web;
using Microsoft.Extensions.Options;

namespace Limen.Tests.Observability;

/// <summary>Who may read /api/metrics: the scrape token when one is configured, else loopback and the trusted networks.</summary>
public sealed class MetricsScrapeTests
{
    private static readonly System.Net.IPNetwork[] Lab = [System.Net.IPNetwork.Parse("10.20.0.0/16"), System.Net.IPNetwork.Parse("fd00:abcd::/32")];

    public static TheoryData<bool, bool, string?, ScrapeVerdict> Cases => new()
    {
        // token configured: the token alone decides, whatever the address
        { true, true, "203.0.113.9", ScrapeVerdict.Allowed },
        { true, true, "127.0.0.1", ScrapeVerdict.Allowed },
        { true, false, "127.0.0.1", ScrapeVerdict.TokenRequired },
        { true, false, "10.20.1.1", ScrapeVerdict.TokenRequired },
        { true, false, null, ScrapeVerdict.TokenRequired },
        // no token: loopback, a Unix socket (no address) and the trusted networks
        { false, false, "127.0.0.1", ScrapeVerdict.Allowed },
        { false, false, "127.8.9.10", ScrapeVerdict.Allowed },
        { false, false, "::1", ScrapeVerdict.Allowed },
        { false, false, "::ffff:127.0.0.1", ScrapeVerdict.Allowed },
        { false, false, null, ScrapeVerdict.Allowed },
        { false, false, "10.20.255.254", ScrapeVerdict.Allowed },
        { false, false, "::ffff:10.20.3.4", ScrapeVerdict.Allowed },
        { false, false, "fd00:abcd::17", ScrapeVerdict.Allowed },
        { false, false, "10.21.0.1", ScrapeVerdict.NetworkNotTrusted },
        { false, false, "203.0.113.9", ScrapeVerdict.NetworkNotTrusted },
        { false, false, "fd00:abce::1", ScrapeVerdict.NetworkNotTrusted },
        { false, false, "::ffff:203.0.113.9", ScrapeVerdict.NetworkNotTrusted },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void The_policy_decides_by_token_first_and_by_network_only_without_one(bool tokenConfigured, bool tokenPresented, string? client, ScrapeVerdict expected) =>
        Assert.Equal(expected, MetricsScrapePolicy.Decide(tokenConfigured, tokenPresented, client is null ? null : IPAddress.Parse(client), Lab));

    [Theory]
    [InlineData("10.0.0.0/8", true)]
    [InlineData("fd00::/8", true)]
    [InlineData("192.168.1.0/24", true)]
    [InlineData("10.0.0.1/8", false)]     // host bits set: almost always a typo
    [InlineData("10.0.0.0/33", false)]
    [InlineData("10.0.0.0", false)]       // a network needs its prefix length
    [InlineData("everyone", false)]
    public void Trusted_networks_must_be_cidr_networks(string network, bool valid) =>
        Assert.Equal(valid, MetricsScrapePolicy.NetworksProblem([network]) is null);

    [Fact]
    public async Task A_configured_token_file_is_required_of_every_scraper_is_reread_on_rotation_and_a_user_jwt_is_no_token()
    {
        var tokenFile = Path.Combine(Directory.CreateTempSubdirectory("limen-test-scrape-").FullName, "token");
        await File.WriteAllTextAsync(tokenFile, "first-scrape-token\n");
        try
        {
            await using var server = await LimenTestServer.StartAsync(new Dictionary<string, string?> { ["Limen:Metrics:ScrapeTokenFile"] = tokenFile });
            using var anonymous = server.Client();
            var refused = await anonymous.GetAsync("/api/metrics");
            await ProblemAssert.IsProblem(refused, HttpStatusCode.Unauthorized, Problems.Unauthorized);
            Assert.True(refused.Headers.Contains("X-Request-Id"));
            Assert.Equal("Bearer", refused.Headers.WwwAuthenticate.Single().Scheme);
            await ProblemAssert.IsProblem(await GetAsync(server, "wrong-token"), HttpStatusCode.Unauthorized, Problems.Unauthorized);
            // A signed-in admin's JWT is not the scrape token, and it is not counted as a bad JWT either.
            var jwt = await server.AdminTokenAsync();
            await ProblemAssert.IsProblem(await GetAsync(server, jwt), HttpStatusCode.Unauthorized, Problems.Unauthorized);

            var scraped = await GetAsync(server, "first-scrape-token");
            Assert.Equal(HttpStatusCode.OK, scraped.StatusCode);
            var exposition = await scraped.Content.ReadAsStringAsync();
            Assert.Contains("# TYPE vm_quota_denied_total counter", exposition, StringComparison.Ordinal);
            Assert.Equal(0, ProblemAssert.Sample(exposition, "auth_failure_total", "reason=\"invalid_token\""));

            // Rotation: the file is read on every scrape.
            await File.WriteAllTextAsync(tokenFile, "second-scrape-token");
            await ProblemAssert.IsProblem(await GetAsync(server, "first-scrape-token"), HttpStatusCode.Unauthorized, Problems.Unauthorized);
            Assert.Equal(HttpStatusCode.OK, (await GetAsync(server, "second-scrape-token")).StatusCode);

            // A configured file that went missing refuses everybody; it never falls back to "loopback may".
            File.Delete(tokenFile);
            await ProblemAssert.IsProblem(await anonymous.GetAsync("/api/metrics"), HttpStatusCode.Unauthorized, Problems.Unauthorized);
            await ProblemAssert.IsProblem(await GetAsync(server, "second-scrape-token"), HttpStatusCode.Unauthorized, Problems.Unauthorized);
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(tokenFile)!, recursive: true);
        }
    }

    [Fact]
    public async Task Without_a_token_only_loopback_and_the_trusted_networks_may_scrape()
    {
        // Behind a trusted proxy (here: loopback), the client address is X-Forwarded-For's.
        await using var server = await LimenTestServer.StartAsync(new Dictionary<string, string?>
        {
            ["Limen:TrustedProxies:0"] = "127.0.0.1",
            ["Limen:Metrics:TrustedNetworks:0"] = "198.51.100.0/24",
        });

        Assert.Equal(HttpStatusCode.OK, (await GetFromAsync(server, null)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await GetFromAsync(server, "198.51.100.77")).StatusCode);
        var refused = await GetFromAsync(server, "203.0.113.5");
        var problem = await ProblemAssert.IsProblem(refused, HttpStatusCode.Forbidden, Problems.Forbidden);
        Assert.Contains("Limen:Metrics:TrustedNetworks", problem.GetProperty("detail").GetString()!, StringComparison.Ordinal);
        Assert.True(refused.Headers.Contains("X-Request-Id"));
        Assert.DoesNotContain("vm_quota_denied_total", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_trusted_network_that_is_not_a_cidr_network_fails_the_start_naming_it()
    {
        var failure = await Assert.ThrowsAsync<OptionsValidationException>(() =>
            LimenTestServer.StartAsync(new Dictionary<string, string?> { ["Limen:Metrics:TrustedNetworks:0"] = "10.1.2.3/8" }));
        Assert.Contains("'10.1.2.3/8'", failure.Message, StringComparison.Ordinal);
    }

    private static async Task<HttpResponseMessage> GetAsync(LimenTestServer server, string bearer)
    {
        using var client = server.Client();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/api/metrics");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        return await client.SendAsync(request);
    }

    private static async Task<HttpResponseMessage> GetFromAsync(LimenTestServer server, string? forwardedFor)
    {
        using var client = server.Client();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/api/metrics");
        if (forwardedFor is not null)
        {
            request.Headers.Add("X-Forwarded-For", forwardedFor);
        }

        return await client.SendAsync(request);
    }
}
