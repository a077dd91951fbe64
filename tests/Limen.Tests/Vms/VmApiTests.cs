using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Xml.Linq;
using Limen.Features.Vms;
using Limen.Tests.Infrastructure;
using Limen.Web;
using Microsoft.Extensions.DependencyInjection;

namespace Limen.Tests.Vms;

/// <summary>The VM API against libvirt's test driver (a real libvirt driver, in process): fast, no guest boots.</summary>
public sealed class VmApiTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private static readonly string[] CdromFirst = ["cdrom", "hd"];
    private static readonly string[] NetworkBoot = ["network"];

    private LimenTestServer Server => fixture.Server;

    private async Task<(HttpClient Client, Guid UserId, Guid ImageId)> UserWithImageAsync(string username)
    {
        var (id, token) = await Server.CreateUserAsync(username);
        var image = await VmTestKit.RegisterBlankImageAsync(Server, "blank-" + username);
        return (Server.Client(token), id, image);
    }

    /// <summary>
    /// A create that breaks the MAC index must not be told as a taken name (the soak at 10,000 VMs
    /// drew a taken MAC and answered "You already have a VM named …"): the index each violation
    /// names is what tells them apart.
    /// </summary>
    [Fact]
    public async Task A_duplicate_mac_and_a_duplicate_name_are_told_apart_by_their_index()
    {
        var (client, userId, image) = await UserWithImageAsync("vm-mac-twin");
        var vm = await VmTestKit.CreateVmAsync(client, image, "mac-original");
        var factory = Server.Services.GetRequiredService<Microsoft.EntityFrameworkCore.IDbContextFactory<Limen.Data.LimenDbContext>>();
        async Task<Microsoft.EntityFrameworkCore.DbUpdateException> InsertTwinAsync(string name, string mac)
        {
            await using var db = await factory.CreateDbContextAsync();
            var original = await db.Vms.FindAsync(vm.GetProperty("id").GetGuid());
            db.Vms.Add(new Limen.Data.Vm
            {
                Id = Guid.NewGuid(), Name = name, OwnerId = userId, HostId = original!.HostId, ImageId = image, BootOrder = "hd",
                Vcpus = 1, MemoryMb = 128, DiskGb = 1, State = VmStates.Stopped, MacAddress = mac,
                CreatedAt = DateTimeOffset.UtcNow, UpdatedAt = DateTimeOffset.UtcNow,
            });
            return await Assert.ThrowsAsync<Microsoft.EntityFrameworkCore.DbUpdateException>(() => db.SaveChangesAsync());
        }

        var sameMac = await InsertTwinAsync("mac-twin", vm.GetProperty("mac_address").GetString()!);
        Assert.True(Limen.Data.DbErrors.IsUniqueViolation(sameMac, "ix_vms_mac_address"));
        Assert.False(Limen.Data.DbErrors.IsUniqueViolation(sameMac, "ix_vms_owner_id_name"));
        var sameName = await InsertTwinAsync("mac-original", VmRules.NewMacAddress());
        Assert.True(Limen.Data.DbErrors.IsUniqueViolation(sameName, "ix_vms_owner_id_name"));
        Assert.False(Limen.Data.DbErrors.IsUniqueViolation(sameName, "ix_vms_mac_address"));
    }

    [Fact]
    public async Task Create_defines_a_domain_named_by_prefix_and_id_with_a_disk_and_a_unique_mac_and_loopback_only_vnc()
    {
        var (client, userId, image) = await UserWithImageAsync("vm-creator");
        var a = await VmTestKit.CreateVmAsync(client, image, "alpha");
        var b = await VmTestKit.CreateVmAsync(client, image, "beta");
        var id = a.GetProperty("id").GetGuid();

        Assert.Equal("stopped", a.GetProperty("state").GetString());
        Assert.Equal(userId, a.GetProperty("owner_id").GetGuid());
        Assert.NotEqual(a.GetProperty("mac_address").GetString(), b.GetProperty("mac_address").GetString());
        Assert.True(File.Exists(VmTestKit.DiskPath(Server, id)));
        var xml = XDocument.Parse(VmTestKit.Libvirt(Server, c =>
        {
            using var domain = c.LookupDomainByUuid(id)!;
            return domain.GetXmlDesc();
        }));
        Assert.Equal(LimenTestServer.DomainPrefix + id, xml.Root!.Element("name")!.Value);
        Assert.Equal("alpha", xml.Root.Element("title")!.Value);
        var graphics = xml.Descendants("graphics").Single();
        Assert.Null(graphics.Attribute("listen"));
        Assert.DoesNotContain("0.0.0.0", xml.ToString(), StringComparison.Ordinal);
        Assert.Equal(VmTestKit.DiskPath(Server, id), xml.Descendants("disk").Single().Element("source")!.Attribute("file")!.Value);
    }

    [Fact]
    public async Task Actions_follow_the_state_table_with_no_ops_and_conflicts()
    {
        var (client, _, image) = await UserWithImageAsync("vm-actor");
        var id = (await VmTestKit.CreateVmAsync(client, image, "actor")).GetProperty("id").GetGuid();

        async Task<string> Act(string action, HttpStatusCode expected = HttpStatusCode.OK)
        {
            var response = await client.PostAsync($"/api/vms/{id}/actions/{action}", null);
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(expected == response.StatusCode, $"{action}: {(int)response.StatusCode} {text}");
            return System.Text.Json.JsonDocument.Parse(text).RootElement.TryGetProperty("state", out var s) ? s.GetString()! : "";
        }

        Assert.Equal("stopped", await Act("stop"));              // already stopped: no-op
        Assert.Equal("stopped", await Act("resume", HttpStatusCode.Conflict));
        Assert.Equal("running", await Act("start"));
        Assert.Equal("running", await Act("start"));             // no-op
        Assert.Equal("paused", await Act("suspend"));
        Assert.Equal("paused", await Act("suspend"));            // no-op
        Assert.Equal("paused", await Act("reboot", HttpStatusCode.Conflict));
        Assert.Equal("running", await Act("resume"));
        Assert.Equal("running", await Act("reboot"));
        Assert.Equal("stopped", await Act("stop"));
        Assert.Equal("running", await Act("start"));
        Assert.Equal("stopped", await Act("shutdown"));
        await ProblemAssert.IsProblem(await client.PostAsync($"/api/vms/{id}/actions/explode", null), HttpStatusCode.BadRequest, Problems.Validation);

        var audit = await Server.Database.ScalarAsync($"SELECT count(*) FROM audit_logs WHERE target_id = '{id}' AND action LIKE 'vm.%' AND result = 'success'");
        Assert.True(audit >= 7);
        Assert.Equal(1, await Server.Database.ScalarAsync($"SELECT count(*) FROM audit_logs WHERE target_id = '{id}' AND action = 'vm.resume' AND result = 'failure'"));
    }

    public static TheoryData<string, string> BadVms => new()
    {
        { "{\"name\":\"<evil/>\",\"vcpus\":1,\"memory_mb\":128,\"disk_gb\":1,\"image_id\":\"IMAGE\"}", "name" },
        { "{\"name\":\"quo\\\"te\",\"vcpus\":1,\"memory_mb\":128,\"disk_gb\":1,\"image_id\":\"IMAGE\"}", "name" },
        { "{\"name\":\"new\\nline\",\"vcpus\":1,\"memory_mb\":128,\"disk_gb\":1,\"image_id\":\"IMAGE\"}", "name" },
        { "{\"name\":\"" + new string('x', 300) + "\",\"vcpus\":1,\"memory_mb\":128,\"disk_gb\":1,\"image_id\":\"IMAGE\"}", "name" },
        { "{\"name\":\"   \",\"vcpus\":1,\"memory_mb\":128,\"disk_gb\":1,\"image_id\":\"IMAGE\"}", "name" },
        { "{\"name\":\"ok\",\"vcpus\":0,\"memory_mb\":128,\"disk_gb\":1,\"image_id\":\"IMAGE\"}", "vcpus" },
        { "{\"name\":\"ok\",\"vcpus\":-2,\"memory_mb\":128,\"disk_gb\":1,\"image_id\":\"IMAGE\"}", "vcpus" },
        { "{\"name\":\"ok\",\"vcpus\":4096,\"memory_mb\":128,\"disk_gb\":1,\"image_id\":\"IMAGE\"}", "vcpus" },
        { "{\"name\":\"ok\",\"vcpus\":1,\"memory_mb\":16,\"disk_gb\":1,\"image_id\":\"IMAGE\"}", "memory_mb" },
        { "{\"name\":\"ok\",\"vcpus\":1,\"memory_mb\":128,\"disk_gb\":0,\"image_id\":\"IMAGE\"}", "disk_gb" },
        { "{\"name\":\"ok\",\"vcpus\":1,\"memory_mb\":128,\"disk_gb\":1,\"image_id\":\"00000000-0000-0000-0000-000000000001\"}", "image_id" },
        { "{\"name\":\"ok\",\"vcpus\":1,\"memory_mb\":\"lots\",\"disk_gb\":1,\"image_id\":\"IMAGE\"}", "$.memory_mb" },
        { "{\"name\":\"ok\",\"vcpus\":1,\"memory_mb\":128,\"disk_gb\":1,\"image_id\":\"IMAGE\",\"host_path\":\"/etc/shadow\"}", "$.host_path" },
    };

    [Theory]
    [MemberData(nameof(BadVms))]
    public async Task Bad_vm_requests_are_4xx_and_create_nothing(string json, string field)
    {
        var (client, userId, image) = await UserWithImageAsync("bad-" + Guid.NewGuid().ToString("N")[..8]);
        var response = await client.PostAsync("/api/vms", new StringContent(json.Replace("IMAGE", image.ToString(), StringComparison.Ordinal), Encoding.UTF8, "application/json"));
        var problem = await ProblemAssert.IsProblem(response, HttpStatusCode.BadRequest, field.StartsWith('$') ? Problems.MalformedRequest : Problems.Validation);
        Assert.Equal(field, problem.GetProperty("field").GetString());
        Assert.Equal(0, await Server.Database.ScalarAsync($"SELECT count(*) FROM vms WHERE owner_id = '{userId}'"));
        Assert.Empty(VmTestKit.OrphanDiskFiles(Server));
    }

    [Fact]
    public async Task Another_users_vm_is_404_everywhere_and_lists_are_per_owner_while_admins_see_all()
    {
        var (alice, aliceId, image) = await UserWithImageAsync("alice-vms");
        var (bobId, bobToken) = await Server.CreateUserAsync("bob-vms");
        using var bob = Server.Client(bobToken);
        var id = (await VmTestKit.CreateVmAsync(alice, image, "private")).GetProperty("id").GetGuid();

        await ProblemAssert.IsProblem(await bob.GetAsync($"/api/vms/{id}"), HttpStatusCode.NotFound, Problems.NotFound);
        await ProblemAssert.IsProblem(await bob.PostAsync($"/api/vms/{id}/actions/start", null), HttpStatusCode.NotFound, Problems.NotFound);
        await ProblemAssert.IsProblem(await bob.PatchAsJsonAsync($"/api/vms/{id}", new { name = "mine" }), HttpStatusCode.NotFound, Problems.NotFound);
        await ProblemAssert.IsProblem(await bob.GetAsync($"/api/vms/{id}/stats"), HttpStatusCode.NotFound, Problems.NotFound);
        await ProblemAssert.IsProblem(await bob.DeleteAsync($"/api/vms/{id}"), HttpStatusCode.NotFound, Problems.NotFound);
        // The same answer as for an id that does not exist at all: no existence leak.
        var unknown = await ProblemAssert.Json(await bob.GetAsync($"/api/vms/{Guid.NewGuid()}"));
        var foreign = await ProblemAssert.Json(await bob.GetAsync($"/api/vms/{id}"));
        Assert.Equal(unknown.GetProperty("detail").GetString(), foreign.GetProperty("detail").GetString());

        Assert.Equal(0, (await ProblemAssert.Json(await bob.GetAsync("/api/vms"))).GetProperty("total").GetInt32());
        Assert.Equal(0, (await ProblemAssert.Json(await bob.GetAsync($"/api/vms?owner_id={aliceId}"))).GetProperty("total").GetInt32());
        using var admin = Server.Client(await Server.AdminTokenAsync());
        var filtered = await ProblemAssert.Json(await admin.GetAsync($"/api/vms?owner_id={aliceId}"));
        Assert.Equal(id, Assert.Single(filtered.GetProperty("items").EnumerateArray()).GetProperty("id").GetGuid());
        Assert.Equal(HttpStatusCode.OK, (await admin.PostAsync($"/api/vms/{id}/actions/start", null)).StatusCode);
        Assert.NotEqual(Guid.Empty, bobId);
    }

    [Fact]
    public async Task Lists_page_in_creation_order_with_exact_totals_through_creates_and_deletes()
    {
        var (client, userId, image) = await UserWithImageAsync("vm-pager");
        var created = new List<Guid>();
        for (var i = 0; i < 5; i++)
        {
            created.Add((await VmTestKit.CreateVmAsync(client, image, $"page-{i}")).GetProperty("id").GetGuid());
        }

        async Task<(List<Guid> Ids, int Total)> Page(HttpClient caller, string query)
        {
            var body = await ProblemAssert.Json(await caller.GetAsync("/api/vms?" + query));
            return (body.GetProperty("items").EnumerateArray().Select(v => v.GetProperty("id").GetGuid()).ToList(), body.GetProperty("total").GetInt32());
        }

        var pages = new List<Guid>();
        for (var page = 1; page <= 3; page++)
        {
            var (ids, total) = await Page(client, $"page={page}&page_size=2");
            Assert.Equal(5, total);
            pages.AddRange(ids);
        }

        Assert.Equal(created, pages);
        // Past the last page: no items, still the true total.
        var (beyond, beyondTotal) = await Page(client, "page=4&page_size=2");
        Assert.Empty(beyond);
        Assert.Equal(5, beyondTotal);
        using var admin = Server.Client(await Server.AdminTokenAsync());
        Assert.Equal(created, (await Page(admin, $"owner_id={userId}&page_size=10")).Ids);
        Assert.Equal(0, (await Page(admin, $"owner_id={Guid.NewGuid()}")).Total);
        Assert.Equal(await Server.Database.ScalarAsync("SELECT count(*) FROM vms"), (await Page(admin, "page_size=1")).Total);

        Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync($"/api/vms/{created[1]}")).StatusCode);
        var (left, count) = await Page(client, "page_size=10");
        Assert.Equal(4, count);
        Assert.Equal([created[0], created[2], created[3], created[4]], left);
        Assert.Equal(await Server.Database.ScalarAsync("SELECT count(*) FROM vms"), (await Page(admin, "page=1000")).Total);
    }

    [Fact]
    public async Task Patch_renames_any_time_but_resizes_only_while_stopped()
    {
        var (client, _, image) = await UserWithImageAsync("vm-patcher");
        var id = (await VmTestKit.CreateVmAsync(client, image, "resizable", start: true)).GetProperty("id").GetGuid();

        await ProblemAssert.IsProblem(await client.PatchAsJsonAsync($"/api/vms/{id}", new { vcpus = 2 }), HttpStatusCode.Conflict, Problems.InvalidState);
        var renamed = await ProblemAssert.Json(await client.PatchAsJsonAsync($"/api/vms/{id}", new { name = "renamed" }));
        Assert.Equal("renamed", renamed.GetProperty("name").GetString());

        await client.PostAsync($"/api/vms/{id}/actions/stop", null);
        var resized = await ProblemAssert.Json(await client.PatchAsJsonAsync($"/api/vms/{id}", new { vcpus = 2, memory_mb = 256 }));
        Assert.Equal(2, resized.GetProperty("vcpus").GetInt32());
        var info = VmTestKit.Libvirt(Server, c =>
        {
            using var domain = c.LookupDomainByUuid(id)!;
            return domain.GetInfo();
        });
        Assert.Equal(2, info.VirtualCpus);
        Assert.Equal(256UL * 1024, info.MaxMemoryKiB);
        await ProblemAssert.IsProblem(await client.PatchAsJsonAsync($"/api/vms/{id}", new { vcpus = 0 }), HttpStatusCode.BadRequest, Problems.Validation);
    }

    [Fact]
    public async Task Delete_stops_undefines_and_removes_the_disk()
    {
        var (client, _, image) = await UserWithImageAsync("vm-deleter");
        var id = (await VmTestKit.CreateVmAsync(client, image, "doomed", start: true)).GetProperty("id").GetGuid();
        Assert.True(VmTestKit.DomainExists(Server, id));

        var deleted = await client.DeleteAsync($"/api/vms/{id}");
        Assert.True(HttpStatusCode.NoContent == deleted.StatusCode, await deleted.Content.ReadAsStringAsync());

        Assert.False(VmTestKit.DomainExists(Server, id));
        Assert.False(File.Exists(VmTestKit.DiskPath(Server, id)));
        Assert.Equal(0, await Server.Database.ScalarAsync($"SELECT count(*) FROM vms WHERE id = '{id}'"));
        await ProblemAssert.IsProblem(await client.GetAsync($"/api/vms/{id}"), HttpStatusCode.NotFound, Problems.NotFound);
    }

    [Fact]
    public async Task A_create_that_fails_midway_leaves_no_row_domain_or_disk()
    {
        var (userId, token) = await Server.CreateUserAsync("vm-unlucky");
        using var client = Server.Client(token);
        var image = await VmTestKit.RegisterBlankImageAsync(Server, "vanishing");
        // The image file disappears between registration (validated) and the VM's disk creation.
        File.Delete(Path.Combine(Server.Services.GetRequiredService<Features.Images.ImageStore>().Directory, "vanishing.qcow2"));

        var response = await client.PostAsJsonAsync("/api/vms", new { name = "unlucky", vcpus = 1, memory_mb = 128, disk_gb = 1, image_id = image });

        await ProblemAssert.IsProblem(response, HttpStatusCode.InternalServerError, Problems.VmOperationFailed);
        Assert.Equal(0, await Server.Database.ScalarAsync($"SELECT count(*) FROM vms WHERE owner_id = '{userId}'"));
        // Other tests share the test driver, so look for this VM's domain by its title (the VM name).
        Assert.False(VmTestKit.Libvirt(Server, c => c.ListAllDomains().Any(d =>
        {
            using (d)
            {
                return d.GetXmlDesc().Contains("<title>unlucky</title>", StringComparison.Ordinal);
            }
        })));
        Assert.Equal(1, await Server.Database.ScalarAsync($"SELECT count(*) FROM audit_logs WHERE user_id = '{userId}' AND action = 'vm.create' AND result = 'failure'"));
        Assert.Empty(VmTestKit.OrphanDiskFiles(Server));
    }

    [Fact]
    public async Task Reconciliation_marks_a_vanished_domain_missing_and_leaves_an_unknown_domain_alone()
    {
        // Every server in this process shares the test driver's domains; a prefix of its own makes
        // limen_unknown_domains count only the stranger defined here.
        var prefix = $"{LimenTestServer.DomainPrefix}{Guid.NewGuid():N}"[..20] + "-";
        await using var server = await LimenTestServer.StartAsync(new Dictionary<string, string?> { ["Limen:Hypervisor:DomainPrefix"] = prefix });
        var (_, token) = await server.CreateUserAsync("vm-reconciled");
        using var client = server.Client(token);
        var image = await VmTestKit.RegisterBlankImageAsync(server);
        var id = (await VmTestKit.CreateVmAsync(client, image, "vanishes")).GetProperty("id").GetGuid();
        var stranger = Guid.NewGuid();
        try
        {
            VmTestKit.Libvirt(server, c =>
            {
                using (var domain = c.LookupDomainByUuid(id)!)
                {
                    domain.Undefine();
                }

                c.DefineDomain($"<domain type='test'><name>{prefix}{stranger}</name><uuid>{stranger}</uuid><memory unit='MiB'>64</memory><os><type>hvm</type></os></domain>").Dispose();
                return true;
            });

            await server.Services.GetRequiredService<VmReconciler>().ReconcileOnceAsync(CancellationToken.None);

            var vm = await ProblemAssert.Json(await client.GetAsync($"/api/vms/{id}"));
            Assert.Equal("missing", vm.GetProperty("state").GetString());
            Assert.False(string.IsNullOrEmpty(vm.GetProperty("state_reason").GetString()));
            Assert.True(VmTestKit.DomainExists(server, stranger));
            var metrics = await server.MetricsAsync();
            Assert.Equal(1, ProblemAssert.Sample(metrics, "limen_unknown_domains"));
            Assert.Equal(1, ProblemAssert.Sample(metrics, "limen_libvirt_up"));
            Assert.Equal(1, ProblemAssert.Sample(metrics, "limen_vms", "state=\"missing\""));
        }
        finally
        {
            VmTestKit.Libvirt(server, c =>
            {
                using var domain = c.LookupDomainByUuid(stranger);
                domain?.Undefine();
                return true;
            });
        }

        Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync($"/api/vms/{id}")).StatusCode);
    }

    [Fact]
    public async Task Reconciliation_leaves_a_vm_alone_while_an_operation_holds_it_and_catches_up_after()
    {
        var (client, _, image) = await UserWithImageAsync("vm-held");
        var id = (await VmTestKit.CreateVmAsync(client, image, "held")).GetProperty("id").GetGuid();
        var reconciler = Server.Services.GetRequiredService<VmReconciler>();
        async Task<string?> State() => (await ProblemAssert.Json(await client.GetAsync($"/api/vms/{id}"))).GetProperty("state").GetString();

        // Held first, so that neither the event this start raises nor any sweep may touch the row meanwhile.
        await using (await Server.Services.GetRequiredService<VmLocks>().TryAcquireAsync(id, CancellationToken.None) ?? throw new InvalidOperationException("the VM's lock is taken"))
        {
            VmTestKit.Libvirt(Server, c =>
            {
                using var domain = c.LookupDomainByUuid(id)!;
                domain.Create();
                return true;
            });
            await reconciler.ReconcileOnceAsync(CancellationToken.None);
            Assert.Equal("stopped", await State());
        }

        await reconciler.ReconcileOnceAsync(CancellationToken.None);
        Assert.Equal("running", await State());
        Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync($"/api/vms/{id}")).StatusCode);
    }

    [Fact]
    public async Task Concurrent_actions_on_one_vm_are_serialized_and_the_row_matches_libvirt()
    {
        var (client, _, image) = await UserWithImageAsync("vm-racer");
        var id = (await VmTestKit.CreateVmAsync(client, image, "raced")).GetProperty("id").GetGuid();
        var actions = Enumerable.Range(0, 20).Select(i => i % 2 == 0 ? "start" : "stop");

        var responses = await Task.WhenAll(actions.Select(a => client.PostAsync($"/api/vms/{id}/actions/{a}", null)));

        Assert.All(responses, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        var row = (await ProblemAssert.Json(await client.GetAsync($"/api/vms/{id}"))).GetProperty("state").GetString();
        var actual = VmTestKit.Libvirt(Server, c =>
        {
            using var domain = c.LookupDomainByUuid(id)!;
            return VmStates.FromDomain(domain.GetState().State);
        });
        Assert.Equal(actual, row);
    }

    [Fact]
    public async Task Cdrom_and_boot_order_change_the_definition_while_stopped()
    {
        var (client, _, image) = await UserWithImageAsync("vm-installer");
        var store = Server.Services.GetRequiredService<Features.Images.ImageStore>();
        await File.WriteAllBytesAsync(Path.Combine(store.Directory, "installer.iso"), new byte[64 * 1024]);
        var iso = await VmTestKit.RegisterAsync(Server, "installer", "installer.iso", "iso");
        var id = (await VmTestKit.CreateVmAsync(client, image, "installable")).GetProperty("id").GetGuid();

        var attached = await ProblemAssert.Json(await client.PutAsJsonAsync($"/api/vms/{id}/cdrom", new { image_id = iso }));
        Assert.Equal(iso, attached.GetProperty("cdrom_image_id").GetGuid());
        var ordered = await ProblemAssert.Json(await client.PutAsJsonAsync($"/api/vms/{id}/boot-order", new { devices = CdromFirst }));
        Assert.Equal(["cdrom", "hd"], ordered.GetProperty("boot_order").EnumerateArray().Select(e => e.GetString()));
        var xml = XDocument.Parse(VmTestKit.Libvirt(Server, c =>
        {
            using var domain = c.LookupDomainByUuid(id)!;
            return domain.GetXmlDesc();
        }));
        Assert.Contains(xml.Descendants("disk"), d => d.Attribute("device")?.Value == "cdrom" && d.Element("source")?.Attribute("file")?.Value == Path.Combine(store.Directory, "installer.iso"));
        Assert.Equal(["cdrom", "hd"], xml.Descendants("boot").Select(b => b.Attribute("dev")!.Value));

        await ProblemAssert.IsProblem(await client.PutAsJsonAsync($"/api/vms/{id}/boot-order", new { devices = NetworkBoot }), HttpStatusCode.BadRequest, Problems.Validation);
        await ProblemAssert.IsProblem(await client.PutAsJsonAsync($"/api/vms/{id}/cdrom", new { image_id = image }), HttpStatusCode.BadRequest, Problems.Validation);
        await client.PostAsync($"/api/vms/{id}/actions/start", null);
        await ProblemAssert.IsProblem(await client.DeleteAsync($"/api/vms/{id}/cdrom"), HttpStatusCode.Conflict, Problems.InvalidState);
        await client.PostAsync($"/api/vms/{id}/actions/stop", null);
        var detached = await ProblemAssert.Json(await client.DeleteAsync($"/api/vms/{id}/cdrom"));
        Assert.Equal(System.Text.Json.JsonValueKind.Null, detached.GetProperty("cdrom_image_id").ValueKind);
        using var admin = Server.Client(await Server.AdminTokenAsync());
        await ProblemAssert.IsProblem(await admin.DeleteAsync($"/api/admin/images/{image}"), HttpStatusCode.Conflict, Problems.Conflict);
    }

    [Fact]
    public async Task A_user_who_owns_vms_cannot_be_deleted_until_the_vms_are_gone()
    {
        var (client, userId, image) = await UserWithImageAsync("vm-holder");
        var id = (await VmTestKit.CreateVmAsync(client, image, "held")).GetProperty("id").GetGuid();
        using var admin = Server.Client(await Server.AdminTokenAsync());
        await ProblemAssert.IsProblem(await admin.DeleteAsync($"/api/admin/users/{userId}"), HttpStatusCode.Conflict, Problems.Conflict);
        Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync($"/api/vms/{id}")).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync($"/api/admin/users/{userId}")).StatusCode);
    }

    [Fact]
    public async Task Health_reports_libvirt_and_the_virtualization_type()
    {
        using var client = Server.Client();
        var health = await ProblemAssert.Json(await client.GetAsync("/api/health"));
        Assert.Equal("connected", health.GetProperty("libvirt").GetString());
        Assert.Equal("test", health.GetProperty("virtualization").GetString());
    }
}
