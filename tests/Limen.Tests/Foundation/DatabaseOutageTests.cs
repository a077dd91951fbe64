using System.Net;
using System.Net.Http.Json;
using Limen.Data;
using Limen.Hosting;
using Limen.Tests.Infrastructure;
using Limen.Web;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Limen.Tests.Foundation;

public sealed class DatabaseOutageTests
{
    [Fact]
    public async Task Health_reports_a_stopped_database_503_and_everything_recovers_without_a_restart()
    {
        await using var postgres = await PrivatePostgres.StartAsync();
        await using var server = await LimenTestServer.StartAsync(new Dictionary<string, string?>
        {
            ["ConnectionStrings:Limen"] = postgres.ConnectionString(),
        }, database: await TestDatabase.CreateAsync());
        using var client = server.Client();
        var token = await server.AdminTokenAsync();
        using var admin = server.Client(token);

        var healthy = await client.GetAsync("/api/health");
        Assert.Equal(HttpStatusCode.OK, healthy.StatusCode);
        Assert.Equal("connected", (await ProblemAssert.Json(healthy)).GetProperty("db").GetString());

        await postgres.StopAsync();

        var down = await client.GetAsync("/api/health");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, down.StatusCode);
        var body = await ProblemAssert.Json(down);
        Assert.Equal("degraded", body.GetProperty("status").GetString());
        Assert.Equal("disconnected", body.GetProperty("db").GetString());
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/api/health/live")).StatusCode);
        await ProblemAssert.IsProblem(await admin.GetAsync("/api/admin/users"), HttpStatusCode.ServiceUnavailable, Problems.DatabaseUnavailable);
        var login = await client.PostAsJsonAsync("/api/auth/login", new { username = "admin", password = server.AdminPassword });
        await ProblemAssert.IsProblem(login, HttpStatusCode.ServiceUnavailable, Problems.DatabaseUnavailable);
        Assert.Contains("limen_database_up 0", await server.MetricsAsync(), StringComparison.Ordinal);

        await postgres.StartAgainAsync();

        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/api/health")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync("/api/admin/users")).StatusCode);
        Assert.NotEmpty(await server.AdminTokenAsync());
    }

    [Fact]
    public async Task Startup_waits_for_an_unreachable_database_with_a_clear_log_line_and_then_migrates()
    {
        await using var postgres = await PrivatePostgres.StartAsync();
        await postgres.StopAsync();
        var logs = new CollectingLoggerProvider();
        var stateDir = Directory.CreateTempSubdirectory("limen-test-state-").FullName;
        try
        {
            var services = new ServiceCollection()
                .AddLogging(logging => logging.AddProvider(logs))
                .AddLimenCore(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
                {
                    ["ConnectionStrings:Limen"] = postgres.ConnectionString(),
                    ["Limen:StateDir"] = stateDir,
                }).Build())
                .BuildServiceProvider();
            using var giveUp = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            var migrating = DatabaseStartup.MigrateAsync(services, giveUp.Token);

            await WaitUntil(() => logs.Lines.Any(l => l.Contains("is not reachable", StringComparison.Ordinal)));
            Assert.False(migrating.IsCompleted);
            Assert.DoesNotContain(logs.Lines, l => l.Contains("   at ", StringComparison.Ordinal)); // no stack traces
            Assert.DoesNotContain(logs.Lines, l => l.Contains(postgres.Password, StringComparison.Ordinal)); // no secrets

            await postgres.StartAgainAsync();
            await migrating;
            await using var connection = new NpgsqlConnection(postgres.ConnectionString());
            await connection.OpenAsync();
            await using var count = new NpgsqlCommand("SELECT count(*) FROM \"__EFMigrationsHistory\"", connection);
            Assert.True((long)(await count.ExecuteScalarAsync())! >= 1);
        }
        finally
        {
            Directory.Delete(stateDir, recursive: true);
        }
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        for (var i = 0; i < 200 && !condition(); i++)
        {
            await Task.Delay(100);
        }

        Assert.True(condition());
    }
}
