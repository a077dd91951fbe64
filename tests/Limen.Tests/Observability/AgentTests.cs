using System.Net;
using Limen.Features.Metrics;
using Limen.Tests.Infrastructure;
using Limen.Web;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;

namespace Limen.Tests.Observability;

/// <summary>`limen agent` (no database) and the server's /agent/… proxy to it.</summary>
public sealed class AgentTests
{
    [Fact]
    public async Task Agent_serves_health_prometheus_text_and_the_originals_json_fields_without_a_database()
    {
        await using var agent = await StartAgentAsync();
        using var http = new HttpClient { BaseAddress = agent.Address };

        var health = await ProblemAssert.Json(await http.GetAsync("/health"));
        Assert.Equal("ok", health.GetProperty("status").GetString());

        var json = await MetricsJsonAsync(http);
        var memory = ProcParsers.ParseMemInfo(await File.ReadAllTextAsync("/proc/meminfo"));
        var (_, cores) = ProcParsers.ParseStat(await File.ReadAllTextAsync("/proc/stat"));
        Assert.Equal(memory.TotalBytes, json.GetProperty("total_memory").GetInt64());
        Assert.InRange(json.GetProperty("used_memory").GetInt64(), memory.UsedBytes - (memory.TotalBytes / 20), memory.UsedBytes + (memory.TotalBytes / 20));
        Assert.InRange(json.GetProperty("free_memory").GetInt64(), 0, memory.TotalBytes);
        Assert.Equal(cores, json.GetProperty("cpu_cores").GetInt32());
        Assert.InRange(json.GetProperty("cpu_usage").GetDouble(), 0, 100);
        Assert.Equal(["cpu_usage", "total_memory", "used_memory", "free_memory", "cpu_cores"], json.EnumerateObject().Select(p => p.Name));

        var text = await http.GetStringAsync("/metrics");
        Assert.Contains("host_cpu_usage_percent ", text, StringComparison.Ordinal);
        Assert.Contains("host_memory_usage_percent ", text, StringComparison.Ordinal);
        Assert.Matches("(?m)^host_disk_usage_percent [0-9.]+$", text);
        // Server-only series would tell lies under the agent's job (a 0 database_up would page DatabaseDown).
        Assert.DoesNotContain("limen_database_up", text, StringComparison.Ordinal);
        Assert.DoesNotContain("http_requests_total", text, StringComparison.Ordinal);

        await ProblemAssert.IsProblem(await http.GetAsync("/nothing-here"), HttpStatusCode.NotFound, Problems.NotFound);
    }

    [Fact]
    public async Task Server_proxies_agent_paths_to_signed_in_users_and_answers_503_when_the_agent_is_gone()
    {
        await using var agent = await StartAgentAsync();
        await using var server = await LimenTestServer.StartAsync(new Dictionary<string, string?> { ["Limen:Agent:Url"] = agent.Address.ToString() });
        var (_, token) = await server.CreateUserAsync("viewer");
        using var user = server.Client(token);

        var json = await MetricsJsonAsync(user, "/agent/metrics.json");
        Assert.True(json.GetProperty("total_memory").GetInt64() > 0);
        var text = await user.GetAsync("/agent/metrics?x=1");
        Assert.Equal(HttpStatusCode.OK, text.StatusCode);
        Assert.StartsWith("text/plain", text.Content.Headers.ContentType?.ToString(), StringComparison.Ordinal);
        await ProblemAssert.IsProblem(await user.GetAsync("/agent/nothing-here"), HttpStatusCode.NotFound, Problems.NotFound);

        using var anonymous = server.Client();
        await ProblemAssert.IsProblem(await anonymous.GetAsync("/agent/metrics.json"), HttpStatusCode.Unauthorized, Problems.Unauthorized);

        await agent.DisposeAsync();
        var gone = await ProblemAssert.IsProblem(await user.GetAsync("/agent/metrics.json"), HttpStatusCode.ServiceUnavailable, Problems.AgentUnavailable);
        Assert.DoesNotContain(agent.Address.Authority, gone.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    private static async Task<System.Text.Json.JsonElement> MetricsJsonAsync(HttpClient http, string path = "/metrics.json")
    {
        HttpResponseMessage? response = null;
        // 503 not-ready until the first sample (one CPU window after start).
        await Eventually.WaitAsync(async () => (response = await http.GetAsync(path)).StatusCode == HttpStatusCode.OK,
            TimeSpan.FromSeconds(10), "the agent's first sample");
        return await ProblemAssert.Json(response!);
    }

    internal static async Task<RunningAgent> StartAgentAsync(string? diskPath = null)
    {
        var settings = new Dictionary<string, string?> { ["Limen:Metrics:HostSampleSeconds"] = "1", ["Logging:LogLevel:Default"] = "Warning" };
        if (diskPath is not null)
        {
            settings["Limen:Metrics:DiskPath"] = diskPath;
        }

        var app = AgentServer.Build("http://127.0.0.1:0", settings);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
        return new RunningAgent(app, new Uri(address));
    }

    internal sealed class RunningAgent(WebApplication app, Uri address) : IAsyncDisposable
    {
        private bool disposed;

        public Uri Address { get; } = address;

        public async ValueTask DisposeAsync()
        {
            if (!disposed)
            {
                disposed = true;
                await app.StopAsync();
                await app.DisposeAsync();
            }
        }
    }
}
