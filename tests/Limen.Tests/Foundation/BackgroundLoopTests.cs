using System.Net;
using System.Text.Json;
using Limen.Features.Health;
using Limen.Features.Hosts;
using Limen.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Limen.Tests.Foundation;

public sealed class BackgroundLoopTests
{
    [Fact]
    public void The_back_off_doubles_from_one_second_and_stops_at_sixty()
    {
        int[] expected = [1, 2, 4, 8, 16, 32, 60, 60];
        Assert.Equal(expected, Enumerable.Range(1, 8).Select(n => (int)BackgroundLoop.Backoff(n).TotalSeconds));
        Assert.Equal(TimeSpan.FromSeconds(60), BackgroundLoop.Backoff(int.MaxValue));
    }

    [Fact]
    public void Libvirt_and_database_outages_are_told_apart_from_the_loops_own_errors()
    {
        Assert.Equal(LoopFailureReasons.LibvirtUnavailable, BackgroundLoop.ReasonFor(new HypervisorUnavailableException("down")));
        Assert.Equal(LoopFailureReasons.DatabaseUnavailable, BackgroundLoop.ReasonFor(new InvalidOperationException("wrapped", new TimeoutException())));
        Assert.Equal(LoopFailureReasons.Error, BackgroundLoop.ReasonFor(new InvalidOperationException("a bug")));
    }

    [Fact]
    public async Task A_loop_that_keeps_throwing_is_retried_with_back_off_reported_failing_by_health_and_recovers_without_stopping_the_server()
    {
        var logs = new CollectingLoggerProvider();
        var loop = new FlakyLoop();
        await using var server = await LimenTestServer.StartAsync(new Dictionary<string, string?> { ["Logging:LogLevel:Limen.Tests"] = "Information" }, services =>
        {
            services.AddLogging(logging => logging.AddProvider(logs));
            services.AddHostedService(sp => loop.Attach(sp));
        });
        using var client = server.Client();

        await Eventually.WaitAsync(async () => await LoopAsync(client) is { } report && report.GetProperty("status").GetString() == LoopStatuses.Failing,
            TimeSpan.FromSeconds(30), "the flaky loop to be reported failing");
        using (var degraded = await client.GetAsync("/api/health"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, degraded.StatusCode);
            var body = JsonDocument.Parse(await degraded.Content.ReadAsStringAsync()).RootElement;
            Assert.Equal("degraded", body.GetProperty("status").GetString());
            Assert.Equal("connected", body.GetProperty("db").GetString());
            var report = body.GetProperty("loops").GetProperty(FlakyLoop.LoopName);
            Assert.Equal(LoopFailureReasons.Error, report.GetProperty("reason").GetString());
            Assert.True(report.GetProperty("consecutive_failures").GetInt32() >= LoopHealth.FailingAfter);
            Assert.True(report.GetProperty("next_attempt_at").GetDateTimeOffset() > report.GetProperty("failing_since").GetDateTimeOffset());
            Assert.DoesNotContain("broken on purpose", body.ToString(), StringComparison.Ordinal); // the message stays in the log
        }

        // Attempts came at least 1 s, then 2 s apart, never in a tight loop (a loaded machine may add to it).
        var gaps = loop.Attempts.Zip(loop.Attempts.Skip(1), (a, b) => b - a).Take(LoopHealth.FailingAfter - 1).ToList();
        Assert.InRange(gaps[0].TotalSeconds, 0.95, 10);
        Assert.InRange(gaps[1].TotalSeconds, 1.95, 10);

        loop.Heal();
        await Eventually.WaitAsync(async () => (await client.GetAsync("/api/health")).StatusCode == HttpStatusCode.OK, TimeSpan.FromSeconds(30),
            "health to recover once the loop succeeds");
        Assert.Equal(LoopStatuses.Ok, (await LoopAsync(client))!.Value.GetProperty("status").GetString());
        Assert.False(server.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping.IsCancellationRequested);

        var lines = logs.Lines.Where(l => l.Contains(FlakyLoop.LoopName, StringComparison.Ordinal)).ToList();
        // The stack trace once, at the first failure; one line per further failure; one line on recovery.
        Assert.Single(lines, l => l.Contains("   at ", StringComparison.Ordinal));
        Assert.StartsWith("Error: Background loop flaky_test_loop failed (attempt 1", lines[0], StringComparison.Ordinal);
        Assert.Contains(lines, l => l.StartsWith("Error: Background loop flaky_test_loop failed again (attempt 2", StringComparison.Ordinal)
            && l.Contains("InvalidOperationException: broken on purpose", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("Information: Background loop flaky_test_loop recovered after", StringComparison.Ordinal));
    }

    private static async Task<JsonElement?> LoopAsync(HttpClient client)
    {
        using var response = await client.GetAsync("/api/health");
        var loops = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("loops");
        return loops.TryGetProperty(FlakyLoop.LoopName, out var report) ? report.Clone() : null;
    }

    /// <summary>A loop whose every attempt throws until it is healed.</summary>
    private sealed class FlakyLoop
    {
        public const string LoopName = "flaky_test_loop";
        private readonly System.Collections.Concurrent.ConcurrentQueue<DateTimeOffset> attempts = new();
        private volatile bool healed;

        public IReadOnlyCollection<DateTimeOffset> Attempts => [.. attempts];

        public void Heal() => healed = true;

        public BackgroundLoop Attach(IServiceProvider services) => new Loop(this, services.GetRequiredService<LoopHealth>(),
            services.GetRequiredService<ILogger<FlakyLoop>>());

        private sealed class Loop(FlakyLoop owner, LoopHealth health, ILogger logger) : BackgroundLoop(health, TimeProvider.System, logger)
        {
            public override string Name => LoopName;

            protected override TimeSpan Interval => TimeSpan.FromSeconds(1);

            protected override Task RunOnceAsync(CancellationToken cancellationToken)
            {
                owner.attempts.Enqueue(DateTimeOffset.UtcNow);
                return owner.healed ? Task.CompletedTask : throw new InvalidOperationException("broken on purpose");
            }
        }
    }
}
