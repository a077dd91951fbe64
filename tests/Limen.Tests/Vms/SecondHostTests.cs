using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Limen.Data;
using Limen.Features.Hosts;
using Limen.Libvirt;
using Limen.Tests.Infrastructure;
using Limen.Web;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace Limen.Tests.Vms;

/// <summary>
/// A second hypervisor host configured by the operator (Limen:Hosts:0), here a libvirtd of the
/// test's own: VMs are placed on it, every operation on them reaches its libvirt and its disk
/// folder, and its outage leaves the local host's VMs and the server's health alone.
/// </summary>
public sealed class SecondHostTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task A_vm_placed_on_the_second_host_lives_there_and_the_second_host_down_leaves_the_first_working()
    {
        await using var second = await PrivateLibvirtd.StartAsync();
        var secondDisks = Directory.CreateTempSubdirectory("limen-test-host2-disks-").FullName;
        try
        {
            await using var server = await LimenTestServer.StartAsync(new Dictionary<string, string?>
            {
                ["Limen:Hosts:0:Name"] = "second",
                ["Limen:Hosts:0:Uri"] = second.Uri,
                ["Limen:Hosts:0:ConsoleAddress"] = "127.0.0.1",
                ["Limen:Hosts:0:DiskDir"] = secondDisks,
            });
            var registry = server.Services.GetRequiredService<HostRegistry>();
            var (local, remote) = (registry.Local, registry.All[1]);
            Assert.Equal(["local", "second"], registry.All.Select(h => h.Name));
            var image = await VmTestKit.RegisterBlankImageAsync(server);
            var (_, token) = await server.CreateUserAsync("two-hosts");
            using var client = server.Client(token);
            using var anonymous = server.Client();

            // Placement: both hosts have the same memory; the first VM takes the local host (the tie),
            // which leaves the second host with the most memory unallocated for the next one.
            var first = await VmTestKit.CreateVmAsync(client, image, "on-local", memoryMb: 256);
            Assert.Equal(local.Id, first.GetProperty("host_id").GetGuid());
            var created = await VmTestKit.CreateVmAsync(client, image, "on-second", memoryMb: 128);
            Assert.Equal(remote.Id, created.GetProperty("host_id").GetGuid());
            var (localVm, remoteVm) = (first.GetProperty("id").GetGuid(), created.GetProperty("id").GetGuid());

            // Its domain is in the second daemon (asked over a connection of the test's own), not in the local one; its disk in the second host's folder.
            Assert.True(OnSecond(second, c => c.LookupDomainByUuid(remoteVm) is { } d && Dispose(d)));
            Assert.False(VmTestKit.DomainExists(server, remoteVm));
            Assert.True(File.Exists(Path.Combine(secondDisks, $"{remoteVm}.qcow2")));
            Assert.False(File.Exists(VmTestKit.DiskPath(server, remoteVm)));
            Assert.True(File.Exists(VmTestKit.DiskPath(server, localVm)));

            // Actions, the console's state check, stats and snapshots reach the second host.
            await ActAsync(client, remoteVm, "start", "running");
            Assert.Equal(DomainState.Running, OnSecond(second, c => State(c, remoteVm)));
            Assert.Equal(HttpStatusCode.OK, (await client.PostAsync($"/api/vms/{remoteVm}/console", null)).StatusCode);
            var stats = await ProblemAssert.Json(await client.GetAsync($"/api/vms/{remoteVm}/stats"));
            Assert.Equal("running", stats.GetProperty("state").GetString());
            var snapshot = await client.PostAsJsonAsync($"/api/vms/{remoteVm}/snapshots", new { name = "there" });
            Assert.Equal(HttpStatusCode.Created, snapshot.StatusCode);
            Assert.Equal(1, OnSecond(second, c =>
            {
                using var domain = c.LookupDomainByUuid(remoteVm)!;
                var snapshots = domain.ListAllSnapshots();
                foreach (var found in snapshots)
                {
                    found.Dispose();
                }

                return snapshots.Count;
            }));
            await ActAsync(client, remoteVm, "suspend", "paused");
            Assert.Equal(DomainState.Paused, OnSecond(second, c => State(c, remoteVm)));
            await ActAsync(client, remoteVm, "resume", "running");

            // Destroyed behind Limen's back on the second host: its lifecycle event brings the row along, no sweep needed.
            var destroyed = Stopwatch.StartNew();
            OnSecond(second, c =>
            {
                using var domain = c.LookupDomainByUuid(remoteVm)!;
                domain.Destroy();
                return true;
            });
            await Eventually.WaitAsync(async () => await StateOf(client, remoteVm) == "stopped", TimeSpan.FromSeconds(5), "the destroy to reach the row");
            var followed = destroyed.Elapsed;
            output.WriteLine($"a destroy on the second host reached the row after {followed.TotalMilliseconds:0} ms");
            Assert.True(followed < TimeSpan.FromSeconds(2), $"the row followed the destroy after {followed.TotalMilliseconds:0} ms");

            // The second host goes down: its VMs answer 503, the local host's VMs still work, health stays 200 and names the host.
            await second.KillAsync();
            await Eventually.WaitAsync(async () => HostState(await HealthAsync(anonymous, HttpStatusCode.OK), "second") == "disconnected",
                Deadline, "health to show the second host down");
            var health = await HealthAsync(anonymous, HttpStatusCode.OK);
            Assert.Equal("ok", health.GetProperty("status").GetString());
            Assert.Equal("connected", health.GetProperty("libvirt").GetString());
            Assert.Equal("connected", HostState(health, "local"));
            await ProblemAssert.IsProblem(await client.PostAsync($"/api/vms/{remoteVm}/actions/start", null), HttpStatusCode.ServiceUnavailable, Problems.HypervisorUnavailable);
            await ActAsync(client, localVm, "start", "running");
            await ActAsync(client, localVm, "stop", "stopped");
            // A new VM goes to the host that answers.
            var meanwhile = await VmTestKit.CreateVmAsync(client, image, "while-second-is-down");
            Assert.Equal(local.Id, meanwhile.GetProperty("host_id").GetGuid());
            await Eventually.WaitAsync(async () => (await HostEventsAsync(server, remote.Id)).Contains("host.down"), Deadline, "host.down in events");

            // Back: health shows it connected and host.up follows host.down.
            await second.RestartAsync();
            await Eventually.WaitAsync(async () => HostState(await HealthAsync(anonymous, HttpStatusCode.OK), "second") == "connected",
                Deadline, "health to show the second host back");
            await Eventually.WaitAsync(async () => (await HostEventsAsync(server, remote.Id)) is [.., "host.down", "host.up"], Deadline, "host.up after host.down");
            var events = await HostEventsAsync(server, remote.Id);
            Assert.Equal(["host.up", "host.down", "host.up"], events); // at start, at the kill, at the return: once per transition
            Assert.Equal(["host.up"], await HostEventsAsync(server, local.Id));

            // The restarted daemon's test driver lost the domain: the reconciler marks the VM missing; delete cleans its folder.
            await Eventually.WaitAsync(async () => await StateOf(client, remoteVm) == "missing", Deadline, "the second host's VM to be missing");
            foreach (var id in new[] { remoteVm, localVm, meanwhile.GetProperty("id").GetGuid() })
            {
                Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync($"/api/vms/{id}")).StatusCode);
            }

            Assert.Empty(Directory.GetFiles(secondDisks));
        }
        finally
        {
            Directory.Delete(secondDisks, recursive: true);
        }
    }

    [Theory]
    [InlineData("local", "test:///second", "/tmp", "Limen:Hosts:0:Name 'local' is used by another host.")]
    [InlineData("second", "test:///default", "/tmp", "Limen:Hosts:0:Uri 'test:///default' is used by another host.")]
    [InlineData("second", "test:///second", "", "Limen:Hosts:0:DiskDir is required.")]
    [InlineData("rack 2", "test:///second", "/tmp", "Limen:Hosts:0:Name must be")]
    public async Task A_host_setting_that_is_wrong_fails_the_start_naming_it(string name, string uri, string diskDir, string expected)
    {
        var failure = await Assert.ThrowsAsync<Microsoft.Extensions.Options.OptionsValidationException>(() => LimenTestServer.StartAsync(new Dictionary<string, string?>
        {
            ["Limen:Hosts:0:Name"] = name,
            ["Limen:Hosts:0:Uri"] = uri,
            ["Limen:Hosts:0:ConsoleAddress"] = "127.0.0.1",
            ["Limen:Hosts:0:DiskDir"] = diskDir,
        }));
        Assert.Contains(expected, failure.Message, StringComparison.Ordinal);
    }

    private static T OnSecond<T>(PrivateLibvirtd daemon, Func<LibvirtConnection, T> query)
    {
        using var connection = LibvirtConnection.Open(daemon.Uri);
        return query(connection);
    }

    private static bool Dispose(LibvirtDomain domain)
    {
        domain.Dispose();
        return true;
    }

    private static DomainState? State(LibvirtConnection connection, Guid id)
    {
        using var domain = connection.LookupDomainByUuid(id);
        return domain?.GetState().State;
    }

    private static async Task ActAsync(HttpClient client, Guid id, string action, string expectedState)
    {
        var response = await client.PostAsync($"/api/vms/{id}/actions/{action}", null);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{action}: {body}");
        Assert.Equal(expectedState, JsonDocument.Parse(body).RootElement.GetProperty("state").GetString());
    }

    private static async Task<string?> StateOf(HttpClient client, Guid id) =>
        (await ProblemAssert.Json(await client.GetAsync($"/api/vms/{id}"))).GetProperty("state").GetString();

    private static async Task<JsonElement> HealthAsync(HttpClient client, HttpStatusCode expected)
    {
        var response = await client.GetAsync("/api/health");
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == expected, $"health answered {(int)response.StatusCode}: {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    private static string? HostState(JsonElement health, string name) =>
        health.GetProperty("hosts").EnumerateArray().Single(h => h.GetProperty("name").GetString() == name).GetProperty("libvirt").GetString();

    /// <summary>The host.up/host.down events about one host, in the stream's order.</summary>
    private static async Task<List<string>> HostEventsAsync(LimenTestServer server, Guid hostId)
    {
        await using var scope = server.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<LimenDbContext>();
        var rows = await db.Events.AsNoTracking().Where(e => e.Type == "host.up" || e.Type == "host.down").OrderBy(e => e.Id).ToListAsync();
        return rows.Where(e => JsonDocument.Parse(e.Data).RootElement.GetProperty("host_id").GetGuid() == hostId).Select(e => e.Type).ToList();
    }
}
