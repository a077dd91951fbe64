using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Limen.Data;
using Limen.Features.Hosts;
using Limen.Features.Images;
using Limen.Tests.Infrastructure;
using Limen.Web;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace Limen.Tests.Hosts;

/// <summary>
/// The hosts API on real servers with libvirtds of the tests' own: a host added on one server is
/// used by another on the same database without a restart; bad input changes nothing; users get
/// 403; a host that goes away makes its VMs unknown, and back, they are what libvirt shows.
/// </summary>
public sealed class HostsApiTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(40);

    [Fact]
    public async Task A_host_added_on_one_server_is_used_by_another_and_removed_from_both()
    {
        await using var daemon = await PrivateLibvirtd.StartAsync();
        var disks = Directory.CreateTempSubdirectory("limen-test-apihost-disks-").FullName;
        try
        {
            await using var a = await LimenTestServer.StartAsync();
            await using var b = await LimenTestServer.StartAsync(database: a.Database);
            await a.CreateUserAsync("hosts-admin", "admin");
            var (_, userToken) = await a.CreateUserAsync("hosts-user");
            using var adminA = a.Client(await a.LoginAsync("hosts-admin", "correct horse battery"));
            using var adminB = b.Client(await b.LoginAsync("hosts-admin", "correct horse battery"));
            using var userB = b.Client(await b.LoginAsync("hosts-user", "correct horse battery"));
            using var user = a.Client(userToken);
            using var anonymous = a.Client();

            // Users and anonymous callers never reach a hosts route.
            Assert.Equal(HttpStatusCode.Forbidden, (await user.GetAsync("/api/admin/hosts")).StatusCode);
            Assert.Equal(HttpStatusCode.Forbidden, (await user.PostAsJsonAsync("/api/admin/hosts", Body("rack2", daemon.Uri, disks))).StatusCode);
            Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/api/admin/hosts")).StatusCode);

            // Bad input: a clear 400 naming the field, and no host.
            foreach (var (body, field) in new (object, string)[]
            {
                (Body("rack 2", daemon.Uri, disks), "name"),
                (Body("rack2", "http://127.0.0.1/system", disks), "uri"),
                (Body("rack2", "qemu:///session", disks), "uri"),
                (Body("rack2", daemon.Uri, "relative/disks"), "disk_dir"),
                (Body("rack2", daemon.Uri, "/tmp/limen-test-no-such-folder-" + Guid.NewGuid()), "disk_dir"),
                (new { name = "rack2", uri = daemon.Uri, console_address = "127.0.0.1; rm", disk_dir = disks }, "console_address"),
                (new { name = "rack2", uri = daemon.Uri, console_address = "127.0.0.1", disk_dir = disks, virtualization_type = "xen" }, "virtualization_type"),
            })
            {
                var refused = await ProblemAssert.IsProblem(await adminA.PostAsJsonAsync("/api/admin/hosts", body), HttpStatusCode.BadRequest, Problems.Validation);
                Assert.Equal(field, refused.GetProperty("field").GetString());
            }

            await ProblemAssert.IsProblem(await adminA.PostAsJsonAsync("/api/admin/hosts", Body("local", daemon.Uri, disks)), HttpStatusCode.Conflict, Problems.Conflict);
            Assert.Equal(["local"], (await ListAsync(adminA)).Select(h => h.GetProperty("name").GetString()));

            // Added on A: its view, its audit row.
            var added = await ProblemAssert.Json(await adminA.PostAsJsonAsync("/api/admin/hosts", Body("rack2", daemon.Uri, disks, "127.0.0.9")));
            var id = added.GetProperty("id").GetGuid();
            Assert.Equal("up", added.GetProperty("state").GetString());
            Assert.Equal("api", added.GetProperty("source").GetString());
            Assert.Equal("127.0.0.9", added.GetProperty("migration_address").GetString());
            Assert.True(added.GetProperty("capacity").GetProperty("memory_mib").GetInt64() > 0);
            Assert.Equal(0, added.GetProperty("vm_count").GetInt32());
            Assert.Equal(1, await QueryAsync(a, db => db.AuditLogs.CountAsync(l => l.Action == "host.add" && l.Result == "success" && l.TargetId == id.ToString())));

            // B learns of it from the event stream, without a restart.
            var onB = b.Services.GetRequiredService<HostRegistry>();
            await Eventually.WaitAsync(() => Task.FromResult(onB.Find(id) is not null), Deadline, "server B to open the host added on A");

            // With B's local host in maintenance, B places the new VM on the added host.
            var local = onB.Local.Id;
            var maintained = await ProblemAssert.Json(await adminB.PostAsync($"/api/admin/hosts/{local}/maintenance", null));
            Assert.Equal("maintenance", maintained.GetProperty("state").GetString());
            // Registered through A (whose admin password this test knows); B's image folder gets the same file, as shared storage would.
            var image = await VmTestKit.RegisterBlankImageAsync(a);
            File.Copy(Path.Combine(a.Services.GetRequiredService<ImageStore>().Directory, "blank.qcow2"),
                Path.Combine(b.Services.GetRequiredService<ImageStore>().Directory, "blank.qcow2"));
            var vm = await VmTestKit.CreateVmAsync(userB, image, "placed-vm", memoryMb: 128);
            var vmId = vm.GetProperty("id").GetGuid();
            Assert.Equal(id, vm.GetProperty("host_id").GetGuid());
            Assert.True(File.Exists(Path.Combine(disks, $"{vmId}.qcow2")));

            // The placement's reason: for admins in the VM's detail and the audit log; never for its owner.
            var detail = await ProblemAssert.Json(await adminB.GetAsync($"/api/vms/{vmId}"));
            var reason = detail.GetProperty("placement").GetProperty("reason").GetString();
            Assert.StartsWith("spread: rack2 had ", reason, StringComparison.Ordinal);
            Assert.Contains("local is in maintenance", reason, StringComparison.Ordinal);
            var owners = await (await userB.GetAsync($"/api/vms/{vmId}")).Content.ReadAsStringAsync();
            Assert.DoesNotContain("rack2", owners, StringComparison.Ordinal);
            Assert.Equal(JsonValueKind.Null, JsonDocument.Parse(owners).RootElement.GetProperty("placement").ValueKind);
            var audited = await QueryAsync(b, db => db.AuditLogs.Where(l => l.Action == "vm.create" && l.TargetId == vmId.ToString()).Select(l => l.Details!).SingleAsync());
            Assert.Equal(reason, JsonDocument.Parse(audited).RootElement.GetProperty("placement").GetProperty("reason").GetString());

            // A host with a VM is not removed; a configured one never through the API.
            await ProblemAssert.IsProblem(await adminA.DeleteAsync($"/api/admin/hosts/{id}"), HttpStatusCode.Conflict, Problems.Conflict);
            await ProblemAssert.IsProblem(await adminA.DeleteAsync($"/api/admin/hosts/{local}"), HttpStatusCode.Conflict, Problems.Conflict);
            Assert.Equal(HttpStatusCode.NoContent, (await userB.DeleteAsync($"/api/vms/{vmId}")).StatusCode);
            Assert.Equal("up", (await ProblemAssert.Json(await adminA.PostAsync($"/api/admin/hosts/{local}/activate", null))).GetProperty("state").GetString());
            await Eventually.WaitAsync(() => Task.FromResult(onB.Local.Mode == HostMode.Active), Deadline, "server B to see the local host active");

            Assert.Equal(HttpStatusCode.NoContent, (await adminA.DeleteAsync($"/api/admin/hosts/{id}")).StatusCode);
            Assert.Equal(HttpStatusCode.NotFound, (await adminA.GetAsync($"/api/admin/hosts/{id}")).StatusCode);
            await Eventually.WaitAsync(() => Task.FromResult(onB.Find(id) is null), Deadline, "server B to close the removed host");
            foreach (var action in new[] { "host.add", "host.maintenance", "host.activate", "host.remove" })
            {
                Assert.True(await QueryAsync(a, db => db.AuditLogs.CountAsync(l => l.Action == action && l.Result == "success")) >= 1, $"{action} audited");
            }
        }
        finally
        {
            Directory.Delete(disks, recursive: true);
        }
    }

    [Fact]
    public async Task A_host_that_goes_away_makes_its_vms_unknown_and_back_they_are_what_libvirt_shows()
    {
        await using var daemon = await PrivateLibvirtd.StartAsync();
        var disks = Directory.CreateTempSubdirectory("limen-test-downhost-disks-").FullName;
        try
        {
            await using var server = await LimenTestServer.StartAsync(new Dictionary<string, string?>
            {
                ["Limen:Hosts:0:Name"] = "rack3",
                ["Limen:Hosts:0:Uri"] = daemon.Uri,
                ["Limen:Hosts:0:ConsoleAddress"] = "127.0.0.1",
                ["Limen:Hosts:0:DiskDir"] = disks,
                // Two VMs of one group can only be on the two hosts, one each.
                ["Limen:Placement:Strategy"] = "pack",
            });
            var registry = server.Services.GetRequiredService<HostRegistry>();
            var rack3 = registry.All.Single(h => h.Name == "rack3");
            var image = await VmTestKit.RegisterBlankImageAsync(server);
            var (_, token) = await server.CreateUserAsync("down-host");
            using var client = server.Client(token);
            var first = await CreateAsync(client, image, "grouped-1", "web");
            var second = await CreateAsync(client, image, "grouped-2", "web");
            Assert.NotEqual(first.GetProperty("host_id").GetGuid(), second.GetProperty("host_id").GetGuid());
            var third = await ProblemAssert.IsProblem(await client.PostAsJsonAsync("/api/vms",
                new { name = "grouped-3", vcpus = 1, memory_mb = 128, disk_gb = 1, image_id = image, anti_affinity_group = "web" }), HttpStatusCode.Conflict, Problems.Conflict);
            Assert.Contains("anti-affinity group 'web'", third.GetProperty("detail").GetString(), StringComparison.Ordinal);
            await ProblemAssert.IsProblem(await client.PostAsJsonAsync("/api/vms",
                new { name = "grouped-4", vcpus = 1, memory_mb = 128, disk_gb = 1, image_id = image, anti_affinity_group = "no such group!" }), HttpStatusCode.BadRequest, Problems.Validation);

            var onRack3 = (first.GetProperty("host_id").GetGuid() == rack3.Id ? first : second).GetProperty("id").GetGuid();
            Assert.Equal(HttpStatusCode.OK, (await client.PostAsync($"/api/vms/{onRack3}/actions/start", null)).StatusCode);

            await daemon.KillAsync();
            await Eventually.WaitAsync(async () => await StateAsync(client, onRack3) == "unknown", Deadline, "the VM of the host that went away to be unknown");
            var unknown = await ProblemAssert.Json(await client.GetAsync($"/api/vms/{onRack3}"));
            Assert.Contains("rack3 does not answer", unknown.GetProperty("state_reason").GetString(), StringComparison.Ordinal);
            await ProblemAssert.IsProblem(await client.PostAsync($"/api/vms/{onRack3}/actions/stop", null), HttpStatusCode.ServiceUnavailable, Problems.HypervisorUnavailable);
            await ProblemAssert.IsProblem(await client.DeleteAsync($"/api/vms/{onRack3}"), HttpStatusCode.ServiceUnavailable, Problems.HypervisorUnavailable);
            Assert.Equal("unknown", await StateAsync(client, onRack3));
            Assert.Equal(1, await QueryAsync(server, db => db.Vms.CountAsync(v => v.Id == onRack3)));

            // Per host in the metrics (health probes every host), and health stays 200 for a host that is not the local one.
            using var anonymous = server.Client();
            Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/api/health")).StatusCode);
            var metrics = await server.MetricsAsync();
            Assert.Equal(0, ProblemAssert.Sample(metrics, "limen_host_libvirt_up", "host=\"rack3\""));
            Assert.Equal(1, ProblemAssert.Sample(metrics, "limen_host_libvirt_up", "host=\"local\""));
            Assert.Equal(1, ProblemAssert.Sample(metrics, "limen_host_vms", "host=\"rack3\",state=\"unknown\""));

            // Back: the private daemon's test driver starts empty, so libvirt shows no domain: missing, never deleted.
            await daemon.RestartAsync();
            await Eventually.WaitAsync(async () => await StateAsync(client, onRack3) == "missing", Deadline, "the VM to be reconciled to what libvirt shows");
            foreach (var vm in new[] { first, second })
            {
                Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync($"/api/vms/{vm.GetProperty("id").GetGuid()}")).StatusCode);
            }
        }
        finally
        {
            Directory.Delete(disks, recursive: true);
        }
    }

    [Theory]
    [InlineData("spread", false)]
    [InlineData("pack", true)]
    public async Task Spread_puts_two_vms_on_two_hosts_and_pack_on_one(string strategy, bool together)
    {
        await using var host2 = await PrivateLibvirtd.StartAsync();
        await using var host3 = await PrivateLibvirtd.StartAsync();
        var disks = new[] { Directory.CreateTempSubdirectory("limen-test-place2-").FullName, Directory.CreateTempSubdirectory("limen-test-place3-").FullName };
        try
        {
            var settings = new Dictionary<string, string?> { ["Limen:Placement:Strategy"] = strategy };
            foreach (var (daemon, i) in new[] { (host2, 0), (host3, 1) })
            {
                settings[$"Limen:Hosts:{i}:Name"] = $"host{i + 2}";
                settings[$"Limen:Hosts:{i}:Uri"] = daemon.Uri;
                settings[$"Limen:Hosts:{i}:ConsoleAddress"] = "127.0.0.1";
                settings[$"Limen:Hosts:{i}:DiskDir"] = disks[i];
            }

            await using var server = await LimenTestServer.StartAsync(settings);
            var registry = server.Services.GetRequiredService<HostRegistry>();
            using var admin = server.Client(await server.AdminTokenAsync());
            // Only the two private hosts take VMs.
            Assert.Equal(HttpStatusCode.OK, (await admin.PostAsync($"/api/admin/hosts/{registry.Local.Id}/maintenance", null)).StatusCode);
            var image = await VmTestKit.RegisterBlankImageAsync(server);
            var (_, token) = await server.CreateUserAsync("placement-" + strategy);
            using var client = server.Client(token);
            var first = (await VmTestKit.CreateVmAsync(client, image, "first", memoryMb: 512)).GetProperty("host_id").GetGuid();
            var second = (await VmTestKit.CreateVmAsync(client, image, "second", memoryMb: 512)).GetProperty("host_id").GetGuid();
            // The hosts are alike: the first VM takes the earlier one (the tie), the second goes by the strategy.
            Assert.Equal(registry.All.Single(h => h.Name == "host2").Id, first);
            Assert.Equal(together, first == second);
            Assert.DoesNotContain(registry.Local.Id, new[] { first, second });

            // A migration's target check, on the same figures: the host in maintenance is refused, the other private host fits.
            var placement = server.Services.GetRequiredService<HostPlacement>();
            await using var scope = server.Services.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<LimenDbContext>();
            var vm = await db.Vms.AsNoTracking().SingleAsync(v => v.Name == "first");
            var local = await placement.CheckTargetAsync(db, vm, registry.Local, CancellationToken.None);
            Assert.False(local.Fits);
            Assert.Equal("local is in maintenance", local.Reason);
            Assert.True((await placement.CheckTargetAsync(db, vm, registry.All.Single(h => h.Name == "host3"), CancellationToken.None)).Fits);
        }
        finally
        {
            foreach (var dir in disks)
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    private static object Body(string name, string uri, string diskDir, string? migrationAddress = null) =>
        new { name, uri, console_address = "127.0.0.1", disk_dir = diskDir, migration_address = migrationAddress };

    private static async Task<List<JsonElement>> ListAsync(HttpClient admin) =>
        (await ProblemAssert.Json(await admin.GetAsync("/api/admin/hosts"))).EnumerateArray().ToList();

    private static async Task<JsonElement> CreateAsync(HttpClient client, Guid image, string name, string group)
    {
        var response = await client.PostAsJsonAsync("/api/vms", new { name, vcpus = 1, memory_mb = 128, disk_gb = 1, image_id = image, anti_affinity_group = group });
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, $"create {name}: {body}");
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    private static async Task<string?> StateAsync(HttpClient client, Guid id) =>
        (await ProblemAssert.Json(await client.GetAsync($"/api/vms/{id}"))).GetProperty("state").GetString();

    private static async Task<T> QueryAsync<T>(LimenTestServer server, Func<LimenDbContext, Task<T>> query)
    {
        await using var scope = server.Services.CreateAsyncScope();
        return await query(scope.ServiceProvider.GetRequiredService<LimenDbContext>());
    }
}
