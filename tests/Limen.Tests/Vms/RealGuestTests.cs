using System.Net.Http.Json;
using System.Net;
using Limen.Features.Hosts;
using Limen.Tests.Infrastructure;
using Limen.TestSupport;
using Limen.Web;
using Microsoft.Extensions.DependencyInjection;

namespace Limen.Tests.Vms;

/// <summary>The VM lifecycle on qemu:///system with the tiny guest really booting (TCG).</summary>
[Collection(QemuSystemCollection.Name)]
public sealed class RealGuestTests
{
    private const string Banner = "LIMEN-GUEST READY";

    private static Task<LimenTestServer> StartAsync() => LimenTestServer.StartAsync(new Dictionary<string, string?>
    {
        ["Limen:Hypervisor:Uri"] = "qemu:///system",
        ["Limen:Hypervisor:ShutdownTimeoutSeconds"] = "60",
    });

    [Fact]
    public async Task A_tiny_guest_boots_reboots_suspends_resumes_shuts_down_and_is_deleted_without_leftovers()
    {
        await using var server = await StartAsync();
        var image = await VmTestKit.RegisterTinyGuestAsync(server);
        var (_, token) = await server.CreateUserAsync("guest-owner");
        using var client = server.Client(token);
        Guid? id = null;
        try
        {
            var vm = await VmTestKit.CreateVmAsync(client, image, "tiny", start: true, memoryMb: 256);
            id = vm.GetProperty("id").GetGuid();
            Assert.Equal("running", vm.GetProperty("state").GetString());
            var serial = server.Services.GetRequiredService<HostRegistry>().Local.SerialLogPath(id.Value);
            await Eventually.WaitAsync(() => Task.FromResult(Count(serial, Banner) >= 1), TimeSpan.FromSeconds(90), "the boot banner");
            Assert.Equal("qemu", VmTestKit.Libvirt(server, c =>
            {
                using var domain = c.LookupDomainByUuid(id.Value)!;
                return System.Xml.Linq.XDocument.Parse(domain.GetXmlDesc()).Root!.Attribute("type")!.Value;
            }));

            var stats = await ProblemAssert.Json(await client.GetAsync($"/api/vms/{id}/stats"));
            Assert.Equal("running", stats.GetProperty("state").GetString());
            Assert.True(stats.GetProperty("cpu_usage_percent").GetDouble() > 0);
            Assert.True(stats.GetProperty("disk_read_bytes").GetInt64() > 0);
            Assert.True(stats.GetProperty("memory_total_bytes").GetInt64() > 0);

            await ActAsync(client, id.Value, "reboot", "running");
            await Eventually.WaitAsync(() => Task.FromResult(Count(serial, Banner) >= 2), TimeSpan.FromSeconds(120), "the banner after reboot");

            await ActAsync(client, id.Value, "suspend", "paused");
            await ActAsync(client, id.Value, "resume", "running");
            await ActAsync(client, id.Value, "shutdown", "stopped");

            Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync($"/api/vms/{id}")).StatusCode);
            Assert.False(VmTestKit.DomainExists(server, id.Value));
            Assert.False(File.Exists(VmTestKit.DiskPath(server, id.Value)));
            Assert.False(File.Exists(serial));
            id = null;
        }
        finally
        {
            if (id is { } leftover)
            {
                await client.DeleteAsync($"/api/vms/{leftover}");
            }
        }
    }

    [Fact]
    public async Task Libvirtd_killed_and_restarted_gives_503_meanwhile_and_full_recovery_after()
    {
        await using var server = await StartAsync();
        var image = await VmTestKit.RegisterTinyGuestAsync(server);
        var (_, token) = await server.CreateUserAsync("outage-owner");
        using var client = server.Client(token);
        var id = (await VmTestKit.CreateVmAsync(client, image, "survivor")).GetProperty("id").GetGuid();
        try
        {
            await LibvirtDaemon.KillAsync(TimeSpan.FromSeconds(20));

            var health = await client.GetAsync("/api/health");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, health.StatusCode);
            Assert.Equal("disconnected", (await ProblemAssert.Json(health)).GetProperty("libvirt").GetString());
            await ProblemAssert.IsProblem(await client.PostAsync($"/api/vms/{id}/actions/start", null), HttpStatusCode.ServiceUnavailable, Problems.HypervisorUnavailable);
            var refused = await client.PostAsJsonAsync("/api/vms", new { name = "during-outage", vcpus = 1, memory_mb = 128, disk_gb = 1, image_id = image });
            await ProblemAssert.IsProblem(refused, HttpStatusCode.ServiceUnavailable, Problems.HypervisorUnavailable);
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync($"/api/vms/{id}")).StatusCode); // the database still answers

            await LibvirtDaemon.EnsureRunningAsync(TimeSpan.FromSeconds(30));
            await Eventually.WaitAsync(async () => (await client.GetAsync("/api/health")).StatusCode == HttpStatusCode.OK, TimeSpan.FromSeconds(30), "health to recover");

            var started = await client.PostAsync($"/api/vms/{id}/actions/start", null);
            Assert.Equal(HttpStatusCode.OK, started.StatusCode);
            var list = await ProblemAssert.Json(await client.GetAsync("/api/vms"));
            Assert.Equal(1, list.GetProperty("total").GetInt32());
            Assert.Equal(0, await server.Database.ScalarAsync("SELECT count(*) FROM vms WHERE name = 'during-outage'"));
            Assert.Empty(VmTestKit.OrphanDiskFiles(server));
        }
        finally
        {
            await LibvirtDaemon.EnsureRunningAsync(TimeSpan.FromSeconds(30));
            await Eventually.WaitAsync(() => Task.FromResult(server.Services.GetRequiredService<HostRegistry>().Local.Hypervisor.Probe()), TimeSpan.FromSeconds(30), "libvirt");
            await client.DeleteAsync($"/api/vms/{id}");
        }
    }

    private static async Task ActAsync(HttpClient client, Guid id, string action, string expectedState)
    {
        var response = await client.PostAsync($"/api/vms/{id}/actions/{action}", null);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{action}: {body}");
        Assert.Equal(expectedState, System.Text.Json.JsonDocument.Parse(body).RootElement.GetProperty("state").GetString());
    }

    private static int Count(string file, string text)
    {
        if (!File.Exists(file))
        {
            return 0;
        }

        using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        var content = new StreamReader(stream).ReadToEnd();
        return (content.Length - content.Replace(text, "", StringComparison.Ordinal).Length) / text.Length;
    }
}
