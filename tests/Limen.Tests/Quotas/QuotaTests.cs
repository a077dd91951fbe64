using System.Net;
using System.Net.Http.Json;
using Limen.Tests.Infrastructure;
using Limen.Web;

namespace Limen.Tests.Quotas;

/// <summary>Quotas on real PostgreSQL: races, denials with their body, metric and audit.</summary>
public sealed class QuotaTests
{
    private static async Task<HttpResponseMessage[]> CreateManyAsync(HttpClient client, Guid image, string prefix, int count) =>
        await Task.WhenAll(Enumerable.Range(0, count).Select(i =>
            client.PostAsJsonAsync("/api/vms", new { name = $"{prefix}-{i}", vcpus = 1, memory_mb = 64, disk_gb = 1, image_id = image })));

    [Fact]
    public async Task Fifty_concurrent_creates_against_a_limit_of_five_let_exactly_five_through()
    {
        await using var server = await LimenTestServer.StartAsync();
        var image = await VmTestKit.RegisterBlankImageAsync(server);
        var (userId, token) = await server.CreateUserAsync("racer");
        using var admin = server.Client(await server.AdminTokenAsync());
        Assert.Equal(HttpStatusCode.OK, (await admin.PutAsJsonAsync($"/api/admin/users/{userId}/quota", new { max_vms = 5 })).StatusCode);
        using var client = server.Client(token);

        var responses = await CreateManyAsync(client, image, "race", 50);

        Assert.Equal(5, responses.Count(r => r.StatusCode == HttpStatusCode.Created));
        var denied = responses.Where(r => r.StatusCode == HttpStatusCode.Forbidden).ToList();
        Assert.Equal(45, denied.Count);
        var problem = await ProblemAssert.IsProblem(denied[0], HttpStatusCode.Forbidden, Problems.QuotaExceeded);
        Assert.Equal("vms", problem.GetProperty("resource").GetString());
        Assert.Equal(1, problem.GetProperty("requested").GetInt32());
        Assert.Equal(5, problem.GetProperty("used").GetInt32());
        Assert.Equal(5, problem.GetProperty("limit").GetInt32());
        var detail = problem.GetProperty("detail").GetString()!;
        Assert.Contains("vms", detail, StringComparison.Ordinal);
        Assert.Contains("5", detail, StringComparison.Ordinal);

        var quota = await ProblemAssert.Json(await client.GetAsync("/api/quota"));
        Assert.Equal(5, quota.GetProperty("usage").GetProperty("vms").GetInt32());
        Assert.Equal(5, quota.GetProperty("limits").GetProperty("max_vms").GetInt32());
        Assert.Equal(JsonNull, quota.GetProperty("system").ValueKind);
        Assert.Equal(5, await server.Database.ScalarAsync($"SELECT count(*) FROM vms WHERE owner_id = '{userId}'"));
        // The test driver's state is shared by every server in this process: look up this user's domains by id.
        var created = await Task.WhenAll(responses.Where(r => r.StatusCode == HttpStatusCode.Created).Select(ProblemAssert.Json));
        Assert.All(created, vm => Assert.True(VmTestKit.DomainExists(server, vm.GetProperty("id").GetGuid())));
        Assert.Equal(45, ProblemAssert.Sample(await server.MetricsAsync(), "vm_quota_denied_total", $"resource=\"vms\",user_id=\"{userId}\""));
        Assert.Equal(45, await server.Database.ScalarAsync($"SELECT count(*) FROM audit_logs WHERE action = 'quota.denied' AND target_id = '{userId}'"));
    }

    [Fact]
    public async Task Two_users_racing_against_the_system_limit_get_exactly_the_system_limit_between_them()
    {
        await using var server = await LimenTestServer.StartAsync();
        var image = await VmTestKit.RegisterBlankImageAsync(server);
        using var admin = server.Client(await server.AdminTokenAsync());
        Assert.Equal(HttpStatusCode.OK, (await admin.PutAsJsonAsync("/api/admin/quota", new { max_vms = 6 })).StatusCode);
        var (_, a) = await server.CreateUserAsync("system-a");
        var (_, b) = await server.CreateUserAsync("system-b");
        using var clientA = server.Client(a);
        using var clientB = server.Client(b);

        var responses = (await Task.WhenAll(CreateManyAsync(clientA, image, "sys-a", 10), CreateManyAsync(clientB, image, "sys-b", 10))).SelectMany(r => r).ToList();

        Assert.Equal(6, responses.Count(r => r.StatusCode == HttpStatusCode.Created));
        Assert.Equal(14, responses.Count(r => r.StatusCode == HttpStatusCode.Forbidden));
        Assert.Equal(6, await server.Database.ScalarAsync("SELECT count(*) FROM vms"));
        var system = (await ProblemAssert.Json(await admin.GetAsync("/api/quota"))).GetProperty("system");
        Assert.Equal(6, system.GetProperty("usage").GetProperty("vms").GetInt32());
        Assert.Equal(6, system.GetProperty("limits").GetProperty("max_vms").GetInt32());
    }

    [Fact]
    public async Task A_resize_beyond_quota_is_403_and_leaves_the_vm_unchanged()
    {
        await using var server = await LimenTestServer.StartAsync();
        var image = await VmTestKit.RegisterBlankImageAsync(server);
        var (userId, token) = await server.CreateUserAsync("grower");
        using var admin = server.Client(await server.AdminTokenAsync());
        await admin.PutAsJsonAsync($"/api/admin/users/{userId}/quota", new { max_vcpus = 1, max_memory_mb = 128 });
        using var client = server.Client(token);
        var id = (await VmTestKit.CreateVmAsync(client, image, "small", memoryMb: 128)).GetProperty("id").GetGuid();

        var tooMany = await client.PatchAsJsonAsync($"/api/vms/{id}", new { vcpus = 2 });
        Assert.Equal("vcpus", (await ProblemAssert.IsProblem(tooMany, HttpStatusCode.Forbidden, Problems.QuotaExceeded)).GetProperty("resource").GetString());
        var tooBig = await client.PatchAsJsonAsync($"/api/vms/{id}", new { memory_mb = 256 });
        Assert.Equal("memory", (await ProblemAssert.IsProblem(tooBig, HttpStatusCode.Forbidden, Problems.QuotaExceeded)).GetProperty("resource").GetString());

        var vm = await ProblemAssert.Json(await client.GetAsync($"/api/vms/{id}"));
        Assert.Equal(1, vm.GetProperty("vcpus").GetInt32());
        Assert.Equal(128, vm.GetProperty("memory_mb").GetInt32());
        var info = VmTestKit.Libvirt(server, c =>
        {
            using var domain = c.LookupDomainByUuid(id)!;
            return domain.GetInfo();
        });
        Assert.Equal(1, info.VirtualCpus);
        // Shrinking is always allowed, even below a lowered limit.
        Assert.Equal(HttpStatusCode.OK, (await client.PatchAsJsonAsync($"/api/vms/{id}", new { memory_mb = 64 })).StatusCode);
        var metrics = await server.MetricsAsync();
        Assert.Equal(1, ProblemAssert.Sample(metrics, "vm_quota_denied_total", $"resource=\"vcpus\",user_id=\"{userId}\""));
        Assert.Equal(1, ProblemAssert.Sample(metrics, "vm_quota_denied_total", $"resource=\"memory\",user_id=\"{userId}\""));
    }

    [Fact]
    public async Task Lowering_a_limit_below_usage_blocks_only_new_allocations_and_a_failed_create_returns_its_reservation()
    {
        await using var server = await LimenTestServer.StartAsync();
        var image = await VmTestKit.RegisterBlankImageAsync(server);
        var (userId, token) = await server.CreateUserAsync("shrunk");
        using var client = server.Client(token);
        var id = (await VmTestKit.CreateVmAsync(client, image, "kept")).GetProperty("id").GetGuid();
        using var admin = server.Client(await server.AdminTokenAsync());
        await admin.PutAsJsonAsync($"/api/admin/users/{userId}/quota", new { max_vms = 0 });

        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync($"/api/vms/{id}/actions/start", null)).StatusCode);
        await ProblemAssert.IsProblem(await client.PostAsJsonAsync("/api/vms", new { name = "more", vcpus = 1, memory_mb = 64, disk_gb = 1, image_id = image }),
            HttpStatusCode.Forbidden, Problems.QuotaExceeded);

        await admin.PutAsJsonAsync($"/api/admin/users/{userId}/quota", new { max_vms = 2 });
        var broken = await VmTestKit.RegisterBlankImageAsync(server, "broken");
        File.Delete(Path.Combine(server.StateDir, "images", "broken.qcow2"));
        var failed = await client.PostAsJsonAsync("/api/vms", new { name = "fails", vcpus = 1, memory_mb = 64, disk_gb = 1, image_id = broken });
        Assert.Equal(HttpStatusCode.InternalServerError, failed.StatusCode);
        var usage = (await ProblemAssert.Json(await client.GetAsync("/api/quota"))).GetProperty("usage");
        Assert.Equal(1, usage.GetProperty("vms").GetInt32());
        Assert.Equal(HttpStatusCode.Created, (await client.PostAsJsonAsync("/api/vms", new { name = "fits", vcpus = 1, memory_mb = 64, disk_gb = 1, image_id = image })).StatusCode);
    }

    public static TheoryData<string, string> BadQuotas => new()
    {
        { "{\"max_vms\":-1}", "max_vms" },
        { "{\"max_vcpus\":99999999}", "max_vcpus" },
        { "{\"max_memory_mb\":-5}", "max_memory_mb" },
        { "{\"max_snapshots\":2000000}", "max_snapshots" },
        { "{\"max_disk_gb\":\"lots\"}", "$.max_disk_gb" },
    };

    [Theory]
    [MemberData(nameof(BadQuotas))]
    public async Task Negative_or_absurd_quota_values_are_400_and_change_nothing(string json, string field)
    {
        await using var server = await LimenTestServer.StartAsync();
        var (userId, _) = await server.CreateUserAsync("quota-target");
        using var admin = server.Client(await server.AdminTokenAsync());
        foreach (var url in new[] { $"/api/admin/users/{userId}/quota", "/api/admin/quota" })
        {
            var response = await admin.PutAsync(url, new StringContent(json, System.Text.Encoding.UTF8, "application/json"));
            var problem = await ProblemAssert.IsProblem(response, HttpStatusCode.BadRequest, field.StartsWith('$') ? Problems.MalformedRequest : Problems.Validation);
            Assert.Equal(field, problem.GetProperty("field").GetString());
        }

        Assert.Equal(0, await server.Database.ScalarAsync("SELECT count(*) FROM user_quotas WHERE max_vms IS NOT NULL OR max_vcpus IS NOT NULL OR max_memory_mb IS NOT NULL OR max_disk_gb IS NOT NULL OR max_snapshots IS NOT NULL"));
        Assert.Equal(0, await server.Database.ScalarAsync("SELECT count(*) FROM system_quota WHERE max_vms IS NOT NULL OR max_vcpus IS NOT NULL OR max_memory_mb IS NOT NULL OR max_disk_gb IS NOT NULL OR max_snapshots IS NOT NULL"));
    }

    [Fact]
    public async Task Only_admins_change_quotas_and_changes_are_audited()
    {
        await using var server = await LimenTestServer.StartAsync();
        var (userId, token) = await server.CreateUserAsync("quota-curious");
        using var user = server.Client(token);
        await ProblemAssert.IsProblem(await user.PutAsJsonAsync($"/api/admin/users/{userId}/quota", new { max_vms = 100 }), HttpStatusCode.Forbidden, Problems.Forbidden);
        using var admin = server.Client(await server.AdminTokenAsync());
        var updated = await ProblemAssert.Json(await admin.PutAsJsonAsync($"/api/admin/users/{userId}/quota", new { max_snapshots = 3 }));
        Assert.Equal(3, updated.GetProperty("limits").GetProperty("max_snapshots").GetInt32());
        Assert.Equal(10, updated.GetProperty("limits").GetProperty("max_vms").GetInt32()); // untouched: the default
        Assert.Equal(1, await server.Database.ScalarAsync($"SELECT count(*) FROM audit_logs WHERE action = 'quota.user.update' AND target_id = '{userId}'"));
        await ProblemAssert.IsProblem(await admin.PutAsJsonAsync($"/api/admin/users/{Guid.NewGuid()}/quota", new { max_vms = 1 }), HttpStatusCode.NotFound, Problems.NotFound);
    }

    [Fact]
    public async Task Deleting_an_override_brings_back_the_derived_default_per_limit_or_all_at_once_and_is_audited()
    {
        await using var server = await LimenTestServer.StartAsync();
        var image = await VmTestKit.RegisterBlankImageAsync(server);
        var (userId, token) = await server.CreateUserAsync("quota-reset");
        using var admin = server.Client(await server.AdminTokenAsync());
        using var client = server.Client(token);
        var userUrl = $"/api/admin/users/{userId}/quota";
        Assert.Equal(HttpStatusCode.OK, (await admin.PutAsJsonAsync(userUrl, new { max_vms = 0, max_vcpus = 2 })).StatusCode);
        await ProblemAssert.IsProblem(await client.PostAsJsonAsync("/api/vms", new { name = "blocked", vcpus = 1, memory_mb = 64, disk_gb = 1, image_id = image }),
            HttpStatusCode.Forbidden, Problems.QuotaExceeded);

        // One limit: max_vms is the default again (and enforced as such), max_vcpus keeps its override.
        var one = (await ProblemAssert.Json(await admin.DeleteAsync($"{userUrl}/max_vms"))).GetProperty("limits");
        Assert.Equal(10, one.GetProperty("max_vms").GetInt32());
        Assert.Equal(2, one.GetProperty("max_vcpus").GetInt32());
        Assert.Equal(HttpStatusCode.Created, (await client.PostAsJsonAsync("/api/vms", new { name = "fits", vcpus = 1, memory_mb = 64, disk_gb = 1, image_id = image })).StatusCode);
        Assert.Equal(1, await server.Database.ScalarAsync($"SELECT count(*) FROM user_quotas WHERE user_id = '{userId}' AND max_vms IS NULL AND max_vcpus = 2"));

        // All of them: the user's own view shows the configured defaults.
        Assert.Equal(HttpStatusCode.OK, (await admin.DeleteAsync(userUrl)).StatusCode);
        var mine = (await ProblemAssert.Json(await client.GetAsync("/api/quota"))).GetProperty("limits");
        Assert.Equal((10, 16, 32768, 500, 50), (mine.GetProperty("max_vms").GetInt32(), mine.GetProperty("max_vcpus").GetInt32(),
            mine.GetProperty("max_memory_mb").GetInt32(), mine.GetProperty("max_disk_gb").GetInt32(), mine.GetProperty("max_snapshots").GetInt32()));

        // System-wide: back to what derives from the host and the options.
        var derived = (await ProblemAssert.Json(await admin.GetAsync("/api/quota"))).GetProperty("system").GetProperty("limits").GetRawText();
        Assert.Equal(HttpStatusCode.OK, (await admin.PutAsJsonAsync("/api/admin/quota", new { max_vms = 7, max_vcpus = 3 })).StatusCode);
        var partly = (await ProblemAssert.Json(await admin.DeleteAsync("/api/admin/quota/max_vcpus"))).GetProperty("limits");
        Assert.Equal(7, partly.GetProperty("max_vms").GetInt32());
        Assert.Equal(System.Text.Json.JsonDocument.Parse(derived).RootElement.GetProperty("max_vcpus").GetInt32(), partly.GetProperty("max_vcpus").GetInt32());
        var reset = await ProblemAssert.Json(await admin.DeleteAsync("/api/admin/quota"));
        Assert.Equal(derived, reset.GetProperty("limits").GetRawText());

        // Each reset is audited with what it removed.
        Assert.Equal(2, await server.Database.ScalarAsync($"SELECT count(*) FROM audit_logs WHERE action = 'quota.user.reset' AND target_id = '{userId}' AND result = 'success'"));
        Assert.Equal(0, await server.Database.ScalarAsync("SELECT (details->'previous'->>'max_vms')::int FROM audit_logs WHERE action = 'quota.user.reset' ORDER BY id LIMIT 1"));
        Assert.Equal(2, await server.Database.ScalarAsync("SELECT (details->'previous'->>'max_vcpus')::int FROM audit_logs WHERE action = 'quota.user.reset' ORDER BY id DESC LIMIT 1"));
        Assert.Equal(3, await server.Database.ScalarAsync("SELECT (details->'previous'->>'max_vcpus')::int FROM audit_logs WHERE action = 'quota.system.reset' ORDER BY id LIMIT 1"));
        Assert.Equal(7, await server.Database.ScalarAsync("SELECT (details->'previous'->>'max_vms')::int FROM audit_logs WHERE action = 'quota.system.reset' ORDER BY id DESC LIMIT 1"));
    }

    [Fact]
    public async Task A_reset_by_a_non_admin_of_an_unknown_limit_or_of_an_unknown_user_is_refused_and_changes_nothing()
    {
        await using var server = await LimenTestServer.StartAsync();
        var (userId, token) = await server.CreateUserAsync("quota-keep");
        using var admin = server.Client(await server.AdminTokenAsync());
        Assert.Equal(HttpStatusCode.OK, (await admin.PutAsJsonAsync($"/api/admin/users/{userId}/quota", new { max_vms = 4 })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await admin.PutAsJsonAsync("/api/admin/quota", new { max_vms = 40 })).StatusCode);
        using var user = server.Client(token);

        await ProblemAssert.IsProblem(await user.DeleteAsync($"/api/admin/users/{userId}/quota"), HttpStatusCode.Forbidden, Problems.Forbidden);
        await ProblemAssert.IsProblem(await user.DeleteAsync("/api/admin/quota"), HttpStatusCode.Forbidden, Problems.Forbidden);
        var unknown = await ProblemAssert.IsProblem(await admin.DeleteAsync($"/api/admin/users/{userId}/quota/max_cpus"), HttpStatusCode.NotFound, Problems.NotFound);
        Assert.Contains("max_vcpus", unknown.GetProperty("detail").GetString()!, StringComparison.Ordinal);
        await ProblemAssert.IsProblem(await admin.DeleteAsync("/api/admin/quota/MAX_VMS"), HttpStatusCode.NotFound, Problems.NotFound);
        await ProblemAssert.IsProblem(await admin.DeleteAsync($"/api/admin/users/{Guid.NewGuid()}/quota"), HttpStatusCode.NotFound, Problems.NotFound);

        Assert.Equal(4, await server.Database.ScalarAsync($"SELECT max_vms FROM user_quotas WHERE user_id = '{userId}'"));
        Assert.Equal(40, await server.Database.ScalarAsync("SELECT max_vms FROM system_quota"));
        Assert.Equal(0, await server.Database.ScalarAsync("SELECT count(*) FROM audit_logs WHERE action LIKE 'quota.%.reset'"));
    }

    private const System.Text.Json.JsonValueKind JsonNull = System.Text.Json.JsonValueKind.Null;
}
