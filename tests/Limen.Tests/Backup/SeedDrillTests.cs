using System.Net;
using System.Text.Json;
using Limen.Libvirt;
using Limen.Tests.Infrastructure;

namespace Limen.Tests.Backup;

/// <summary>
/// The seed's restore drill (release-readiness B6-2), for real on PostgreSQL: data created through
/// the API, `limen backup`, DROP SCHEMA public CASCADE, `limen restore`, and the server answers
/// health, login and the VM list with exactly the data from before, and issues a console ticket.
/// </summary>
public sealed class SeedDrillTests
{
    [Fact]
    public async Task Drop_the_schema_restore_and_the_server_answers_with_exactly_the_data_from_before()
    {
        // The test driver keeps its domains while any connection to it is open: this one keeps the
        // running VM alive for the second server below.
        using var keepDomains = LibvirtConnection.Open("test:///default");
        await using var server = await LimenTestServer.StartAsync();
        var seed = await BackupTestKit.SeedAsync(server);
        using var admin = server.Client(await server.AdminTokenAsync());
        var vmsBefore = await BodyAsync(admin, "/api/vms?page_size=200");
        var usersBefore = await BodyAsync(admin, "/api/admin/users?page_size=200");
        var backupTime = DateTimeOffset.UtcNow;
        var auditBefore = await BodyAsync(admin, $"/api/audit?page_size=200&to={Uri.EscapeDataString(backupTime.ToString("O"))}");
        var environment = BackupTestKit.Environment(server.Database.ConnectionString, server.StateDir);
        var output = BackupTestKit.TempDir();

        var (exitCode, log) = await LimenProcess.RunAsync(environment, "backup", "--output", output);
        Assert.True(exitCode == 0, log);
        var archive = Directory.GetFiles(output).Single();

        await BackupTestKit.ExecuteAsync(server.Database.ConnectionString, "DROP SCHEMA public CASCADE");
        Assert.Empty(await BackupTestKit.RelationsAsync(server.Database.ConnectionString));

        // The server was left running, as in the seed's script, so restore is told so (--force);
        // RestoreCommandTests shows the refusal without it.
        (exitCode, log) = await LimenProcess.RunAsync(environment, "restore", archive, "--force");
        Assert.True(exitCode == 0, log);
        Assert.Contains("match the manifest", log, StringComparison.Ordinal);

        // The same server, and a freshly started one on the restored database, both answer with the old data.
        await using var fresh = await LimenTestServer.StartAsync(database: server.Database);
        foreach (var answering in new[] { server, fresh })
        {
            using var anonymous = answering.Client();
            using var health = await anonymous.GetAsync("/api/health");
            var healthBody = JsonDocument.Parse(await health.Content.ReadAsStringAsync()).RootElement;
            Assert.Equal(HttpStatusCode.OK, health.StatusCode);
            Assert.Equal("ok", healthBody.GetProperty("status").GetString());
            Assert.Equal("connected", healthBody.GetProperty("db").GetString());

            // Accounts and passwords from before the backup; the admin's is the first server's.
            var aliceToken = await answering.LoginAsync("alice", BackupTestKit.UserPassword);
            using var asAdmin = answering.Client(await answering.LoginAsync("admin", server.AdminPassword));
            Assert.Equal(vmsBefore, await BodyAsync(asAdmin, "/api/vms?page_size=200"));
            Assert.Equal(usersBefore, await BodyAsync(asAdmin, "/api/admin/users?page_size=200"));
            Assert.Equal(auditBefore, await BodyAsync(asAdmin, $"/api/audit?page_size=200&to={Uri.EscapeDataString(backupTime.ToString("O"))}"));

            using var asAlice = answering.Client(aliceToken);
            using var ticket = await asAlice.PostAsync($"/api/vms/{seed.RunningVm}/console", null);
            var ticketBody = await ticket.Content.ReadAsStringAsync();
            Assert.True(ticket.IsSuccessStatusCode, ticketBody);
            var issued = JsonDocument.Parse(ticketBody).RootElement;
            Assert.False(string.IsNullOrEmpty(issued.GetProperty("ticket").GetString()));
            Assert.Contains($"/vnc/{seed.RunningVm}", issued.GetProperty("ws_url").GetString(), StringComparison.Ordinal);
        }
    }

    private static async Task<string> BodyAsync(HttpClient client, string path)
    {
        using var response = await client.GetAsync(path);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{path}: {body}");
        return body;
    }
}
