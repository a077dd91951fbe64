using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Limen.Tests.Infrastructure;

namespace Limen.Tests.Foundation;

/// <summary>The executable as an operator runs it: first start, logs, restart, SIGTERM, migrate.</summary>
public sealed class ServeProcessTests
{
    private const int SigTerm = 15;

    [Fact]
    public async Task First_start_prints_a_generated_admin_password_once_logs_request_ids_and_stops_gracefully_on_sigterm()
    {
        await using var database = await TestDatabase.CreateAsync();
        var stateDir = Directory.CreateTempSubdirectory("limen-test-state-").FullName;
        try
        {
            var port = Ports.Free();
            var environment = new Dictionary<string, string>
            {
                ["LIMEN_STATE_DIR"] = stateDir,
                ["LIMEN_URLS"] = $"http://127.0.0.1:{port}",
                ["ConnectionStrings__Limen"] = database.ConnectionString,
                ["Logging__LogLevel__Microsoft.AspNetCore.Hosting.Diagnostics"] = "Information",
            };

            string password;
            using (var first = LimenProcess.Start(environment, "serve"))
            {
                await first.WaitForOutputAsync(l => l.Contains("Now listening on", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
                var announced = first.Output.Single(l => l.StartsWith("Created the first admin account", StringComparison.Ordinal));
                password = announced.Split('\'')[3];
                var file = Path.Combine(stateDir, "admin-password");
                Assert.Equal(password, File.ReadAllText(file).Trim());
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(stateDir, "jwt-signing-key.pem")));
                // The secret never reaches the structured log.
                Assert.DoesNotContain(first.Output, l => l.StartsWith('{') && l.Contains(password, StringComparison.Ordinal));

                using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
                var login = await client.PostAsJsonAsync("/api/auth/login", new { username = "admin", password });
                Assert.Equal(HttpStatusCode.OK, login.StatusCode);
                var requestId = login.Headers.GetValues("X-Request-Id").Single();
                await first.WaitForOutputAsync(l => l.Contains("Request finished", StringComparison.Ordinal) && l.Contains(requestId, StringComparison.Ordinal), TimeSpan.FromSeconds(10));
                var line = JsonDocument.Parse(first.Output.First(l => l.Contains("Request finished", StringComparison.Ordinal) && l.Contains(requestId, StringComparison.Ordinal))).RootElement;
                Assert.Contains(line.GetProperty("Scopes").EnumerateArray(), s => s.TryGetProperty("RequestId", out var id) && id.GetString() == requestId);

                first.Signal(SigTerm);
                Assert.True(await first.WaitForExitAsync(TimeSpan.FromSeconds(20)), "limen serve did not stop on SIGTERM");
                Assert.Equal(0, first.ExitCode);
                Assert.Contains(first.Output, l => l.Contains("Application is shutting down", StringComparison.Ordinal));
            }

            using var second = LimenProcess.Start(environment, "serve");
            await second.WaitForOutputAsync(l => l.Contains("Now listening on", StringComparison.Ordinal), TimeSpan.FromSeconds(60));
            Assert.DoesNotContain(second.Output, l => l.StartsWith("Created the first admin account", StringComparison.Ordinal));
            using var again = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            Assert.Equal(HttpStatusCode.OK, (await again.PostAsJsonAsync("/api/auth/login", new { username = "admin", password })).StatusCode);
        }
        finally
        {
            Directory.Delete(stateDir, recursive: true);
        }
    }

    [Fact]
    public async Task Migrate_applies_the_schema_and_a_too_short_admin_password_is_refused_at_start()
    {
        await using var database = await TestDatabase.CreateAsync();
        var stateDir = Directory.CreateTempSubdirectory("limen-test-state-").FullName;
        try
        {
            var environment = new Dictionary<string, string>
            {
                ["LIMEN_STATE_DIR"] = stateDir,
                ["ConnectionStrings__Limen"] = database.ConnectionString,
            };
            var (exitCode, output) = await LimenProcess.RunAsync(environment, "migrate");
            Assert.True(exitCode == 0, output);
            Assert.Equal(0, await database.ScalarAsync("SELECT count(*) FROM users"));

            environment["LIMEN_ADMIN_PASSWORD"] = "short";
            environment["LIMEN_URLS"] = $"http://127.0.0.1:{Ports.Free()}";
            var (refused, why) = await LimenProcess.RunAsync(environment, "serve");
            Assert.NotEqual(0, refused);
            Assert.Contains("LIMEN_ADMIN_PASSWORD is not acceptable", why, StringComparison.Ordinal);
            Assert.Equal(0, await database.ScalarAsync("SELECT count(*) FROM users"));
        }
        finally
        {
            Directory.Delete(stateDir, recursive: true);
        }
    }
}
