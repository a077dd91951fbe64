using System.Net;
using System.Net.Http.Json;
using Limen.Tests.Infrastructure;
using Limen.Web;

namespace Limen.Tests.Snapshots;

/// <summary>The snapshot API on libvirt's test driver: ownership, names, quota, states, metrics.</summary>
public sealed class SnapshotApiTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private LimenTestServer Server => fixture.Server;

    private async Task<(HttpClient Client, Guid UserId, Guid VmId)> VmAsync(string username, bool start = false)
    {
        var (userId, token) = await Server.CreateUserAsync(username);
        var image = await VmTestKit.RegisterBlankImageAsync(Server, "img-" + username);
        var client = Server.Client(token);
        var vm = await VmTestKit.CreateVmAsync(client, image, "snap-vm", start: start);
        return (client, userId, vm.GetProperty("id").GetGuid());
    }

    [Fact]
    public async Task Create_list_get_revert_and_delete_a_snapshot_of_a_stopped_vm()
    {
        var (client, _, vmId) = await VmAsync("snapper");
        // The counters are the class's server's; the tests of a class run one at a time, so compare with before.
        var before = await Server.MetricsAsync();
        var created = await client.PostAsJsonAsync($"/api/vms/{vmId}/snapshots", new { name = "first", description = "before the upgrade" });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var snapshot = await ProblemAssert.Json(created);
        var sid = snapshot.GetProperty("id").GetGuid();
        Assert.Equal("stopped", snapshot.GetProperty("vm_state").GetString());
        Assert.False(snapshot.GetProperty("include_memory").GetBoolean());

        var list = await ProblemAssert.Json(await client.GetAsync($"/api/vms/{vmId}/snapshots"));
        Assert.Equal(sid, Assert.Single(list.EnumerateArray()).GetProperty("id").GetGuid());
        Assert.Equal("before the upgrade", (await ProblemAssert.Json(await client.GetAsync($"/api/vms/{vmId}/snapshots/{sid}"))).GetProperty("description").GetString());
        Assert.Equal(1, VmTestKit.Libvirt(Server, c =>
        {
            using var domain = c.LookupDomainByUuid(vmId)!;
            return domain.ListAllSnapshots().Count;
        }));

        var reverted = await ProblemAssert.Json(await client.PostAsync($"/api/vms/{vmId}/snapshots/{sid}/revert", null));
        Assert.Equal("stopped", reverted.GetProperty("state").GetString());

        Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync($"/api/vms/{vmId}/snapshots/{sid}")).StatusCode);
        Assert.Equal(0, VmTestKit.Libvirt(Server, c =>
        {
            using var domain = c.LookupDomainByUuid(vmId)!;
            return domain.ListAllSnapshots().Count;
        }));
        await ProblemAssert.IsProblem(await client.GetAsync($"/api/vms/{vmId}/snapshots/{sid}"), HttpStatusCode.NotFound, Problems.NotFound);
        var after = await Server.MetricsAsync();
        foreach (var operation in new[] { "create", "revert", "delete" })
        {
            var labels = $"operation=\"{operation}\",result=\"success\"";
            Assert.Equal(1, ProblemAssert.Sample(after, "limen_snapshot_operations_total", labels) - ProblemAssert.Sample(before, "limen_snapshot_operations_total", labels));
        }
        foreach (var action in new[] { "snapshot.create", "snapshot.revert", "snapshot.delete" })
        {
            Assert.Equal(1, await Server.Database.ScalarAsync($"SELECT count(*) FROM audit_logs WHERE action = '{action}' AND target_id = '{vmId}' AND result = 'success'"));
        }
    }

    [Fact]
    public async Task A_duplicate_name_is_409_and_memory_of_a_stopped_vm_is_refused()
    {
        var (client, _, vmId) = await VmAsync("duplicator");
        Assert.Equal(HttpStatusCode.Created, (await client.PostAsJsonAsync($"/api/vms/{vmId}/snapshots", new { name = "same" })).StatusCode);
        await ProblemAssert.IsProblem(await client.PostAsJsonAsync($"/api/vms/{vmId}/snapshots", new { name = "same" }), HttpStatusCode.Conflict, Problems.Conflict);
        await ProblemAssert.IsProblem(await client.PostAsJsonAsync($"/api/vms/{vmId}/snapshots", new { name = "ram", include_memory = true }), HttpStatusCode.Conflict, Problems.InvalidState);
        await ProblemAssert.IsProblem(await client.PostAsJsonAsync($"/api/vms/{vmId}/snapshots", new { name = "<bad>" }), HttpStatusCode.BadRequest, Problems.Validation);
        Assert.Single((await ProblemAssert.Json(await client.GetAsync($"/api/vms/{vmId}/snapshots"))).EnumerateArray());
    }

    [Fact]
    public async Task Another_users_vm_and_another_vms_snapshot_are_404()
    {
        var (alice, _, aliceVm) = await VmAsync("alice-snap");
        var (bob, _, bobVm) = await VmAsync("bob-snap");
        var aliceSnapshot = (await ProblemAssert.Json(await alice.PostAsJsonAsync($"/api/vms/{aliceVm}/snapshots", new { name = "mine" }))).GetProperty("id").GetGuid();

        await ProblemAssert.IsProblem(await bob.PostAsJsonAsync($"/api/vms/{aliceVm}/snapshots", new { name = "theirs" }), HttpStatusCode.NotFound, Problems.NotFound);
        await ProblemAssert.IsProblem(await bob.GetAsync($"/api/vms/{aliceVm}/snapshots"), HttpStatusCode.NotFound, Problems.NotFound);
        await ProblemAssert.IsProblem(await bob.PostAsync($"/api/vms/{aliceVm}/snapshots/{aliceSnapshot}/revert", null), HttpStatusCode.NotFound, Problems.NotFound);
        // Bob's own VM with Alice's snapshot id: a snapshot of another VM.
        await ProblemAssert.IsProblem(await bob.PostAsync($"/api/vms/{bobVm}/snapshots/{aliceSnapshot}/revert", null), HttpStatusCode.NotFound, Problems.NotFound);
        await ProblemAssert.IsProblem(await bob.DeleteAsync($"/api/vms/{bobVm}/snapshots/{aliceSnapshot}"), HttpStatusCode.NotFound, Problems.NotFound);
        Assert.Single((await ProblemAssert.Json(await alice.GetAsync($"/api/vms/{aliceVm}/snapshots"))).EnumerateArray());

        using var admin = Server.Client(await Server.AdminTokenAsync());
        Assert.Equal(HttpStatusCode.Created, (await admin.PostAsJsonAsync($"/api/vms/{aliceVm}/snapshots", new { name = "by-admin" })).StatusCode);
    }

    [Fact]
    public async Task The_snapshot_quota_denies_with_the_snapshots_resource()
    {
        var (client, userId, vmId) = await VmAsync("snap-quota");
        using var admin = Server.Client(await Server.AdminTokenAsync());
        await admin.PutAsJsonAsync($"/api/admin/users/{userId}/quota", new { max_snapshots = 1 });
        Assert.Equal(HttpStatusCode.Created, (await client.PostAsJsonAsync($"/api/vms/{vmId}/snapshots", new { name = "one" })).StatusCode);
        var denied = await client.PostAsJsonAsync($"/api/vms/{vmId}/snapshots", new { name = "two" });
        Assert.Equal("snapshots", (await ProblemAssert.IsProblem(denied, HttpStatusCode.Forbidden, Problems.QuotaExceeded)).GetProperty("resource").GetString());
        Assert.Equal(1, ProblemAssert.Sample(await Server.MetricsAsync(), "vm_quota_denied_total", $"resource=\"snapshots\",user_id=\"{userId}\""));
    }

    [Fact]
    public async Task Deleting_a_vm_deletes_its_snapshots()
    {
        var (client, _, vmId) = await VmAsync("snap-deleter", start: true);
        await client.PostAsJsonAsync($"/api/vms/{vmId}/snapshots", new { name = "live", include_memory = true });
        Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync($"/api/vms/{vmId}")).StatusCode);
        Assert.Equal(0, await Server.Database.ScalarAsync($"SELECT count(*) FROM vm_snapshots WHERE vm_id = '{vmId}'"));
        Assert.False(VmTestKit.DomainExists(Server, vmId));
    }
}
