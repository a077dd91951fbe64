using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Limen.Data;
using Limen.Features.Events;
using Limen.Features.Vms;
using Limen.Tests.Infrastructure;
using Limen.Web;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Limen.Tests.Vms;

/// <summary>
/// What the state machine and the services put into <c>events</c>, read from the table (real
/// PostgreSQL, libvirt's test driver). Each test reads only its own VM's (or user's) rows.
/// </summary>
public sealed class VmEventTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private static readonly string[] CdromFirst = ["cdrom", "hd"];

    private LimenTestServer Server => fixture.Server;

    private sealed record Row(long Id, string Type, Guid? OwnerId, Guid? VmId, JsonElement Data)
    {
        public string Text(string property) => Data.GetProperty(property).GetString()!;
    }

    private async Task<List<Row>> EventsAsync(string where, object value)
    {
        await using var connection = new NpgsqlConnection(Server.Database.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"SELECT id, type, owner_id, vm_id, data::text FROM events WHERE {where} = @value ORDER BY id", connection);
        command.Parameters.AddWithValue("value", value);
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<Row>();
        while (await reader.ReadAsync())
        {
            rows.Add(new Row(reader.GetInt64(0), reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetGuid(2),
                reader.IsDBNull(3) ? null : reader.GetGuid(3), JsonDocument.Parse(reader.GetString(4)).RootElement.Clone()));
        }

        return rows;
    }

    private Task<List<Row>> VmEventsAsync(Guid vmId) => EventsAsync("vm_id", vmId);

    private static List<(string From, string To, string Reason)> StateChanges(IEnumerable<Row> rows) =>
        rows.Where(r => r.Type == EventTypes.VmStateChanged).Select(r => (r.Text("from"), r.Text("to"), r.Text("reason"))).ToList();

    private async Task<(HttpClient Client, Guid UserId, Guid ImageId)> UserAsync(string username)
    {
        var (id, token) = await Server.CreateUserAsync(username);
        return (Server.Client(token), id, await VmTestKit.RegisterBlankImageAsync(Server, "img-" + username));
    }

    private static async Task<JsonElement> OkAsync(Task<HttpResponseMessage> request, HttpStatusCode status = HttpStatusCode.OK)
    {
        var response = await request;
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"{(int)response.StatusCode} {body}");
        return body.Length == 0 ? default : JsonDocument.Parse(body).RootElement.Clone();
    }

    [Fact]
    public async Task Create_actions_and_delete_emit_their_events_with_from_to_and_reason_in_order()
    {
        var (client, userId, image) = await UserAsync("ev-actor");
        var id = (await VmTestKit.CreateVmAsync(client, image, "acted")).GetProperty("id").GetGuid();
        await OkAsync(client.PostAsync($"/api/vms/{id}/actions/start", null));
        await OkAsync(client.PostAsync($"/api/vms/{id}/actions/start", null)); // a no-op changes no state
        await OkAsync(client.PostAsync($"/api/vms/{id}/actions/suspend", null));
        await OkAsync(client.PostAsync($"/api/vms/{id}/actions/stop", null));
        await OkAsync(client.DeleteAsync($"/api/vms/{id}"), HttpStatusCode.NoContent);

        var rows = await VmEventsAsync(id);
        Assert.All(rows, r => Assert.Equal(userId, r.OwnerId));
        Assert.All(rows, r => Assert.Equal(id, r.VmId));
        Assert.Equal(
            [EventTypes.VmCreated, EventTypes.VmStateChanged, EventTypes.VmStateChanged, EventTypes.VmStateChanged, EventTypes.VmStateChanged,
             EventTypes.VmStateChanged, EventTypes.VmDeleted],
            rows.Select(r => r.Type));
        Assert.Equal(
            [("creating", "stopped", "create"), ("stopped", "running", "action.start"), ("running", "paused", "action.suspend"),
             ("paused", "stopped", "action.stop"), ("stopped", "deleting", "delete")],
            StateChanges(rows));
        Assert.Equal("acted", rows[0].Text("name"));
        var changed = rows[1].Data;
        Assert.Equal(id, changed.GetProperty("vm_id").GetGuid());
        Assert.True(changed.GetProperty("at").GetDateTimeOffset() > DateTimeOffset.UtcNow.AddMinutes(-5));
        var deleted = rows[^1].Data;
        Assert.Equal(id, deleted.GetProperty("vm_id").GetGuid());
        Assert.Equal("acted", deleted.GetProperty("name").GetString());
    }

    [Fact]
    public async Task Update_cdrom_and_boot_order_emit_vm_updated_and_no_state_change()
    {
        var (client, userId, image) = await UserAsync("ev-updater");
        var id = (await VmTestKit.CreateVmAsync(client, image, "updated")).GetProperty("id").GetGuid();
        var before = (await VmEventsAsync(id)).Count;
        await OkAsync(client.PatchAsJsonAsync($"/api/vms/{id}", new { memory_mb = 256, name = "renamed" }));
        await OkAsync(client.PutAsJsonAsync($"/api/vms/{id}/boot-order", new { devices = CdromFirst }));

        var rows = (await VmEventsAsync(id)).Skip(before).ToList();
        Assert.Equal([EventTypes.VmUpdated, EventTypes.VmUpdated], rows.Select(r => r.Type));
        Assert.All(rows, r => Assert.Equal(userId, r.OwnerId));
        Assert.Equal(256, rows[0].Data.GetProperty("memory_mb").GetInt32());
        Assert.Equal("renamed", rows[0].Text("name"));
        Assert.Equal("cdrom", rows[1].Data.GetProperty("boot_order")[0].GetString());
        await OkAsync(client.DeleteAsync($"/api/vms/{id}"), HttpStatusCode.NoContent);
    }

    [Fact]
    public async Task Snapshot_create_revert_and_delete_emit_snapshot_events_and_the_revert_its_state_change()
    {
        var (client, userId, image) = await UserAsync("ev-snapper");
        var id = (await VmTestKit.CreateVmAsync(client, image, "snapped", start: true)).GetProperty("id").GetGuid();
        var sid = (await OkAsync(client.PostAsJsonAsync($"/api/vms/{id}/snapshots", new { name = "disk-only" }), HttpStatusCode.Created)).GetProperty("id").GetGuid();
        // Taken while running without its memory: the revert restores the disk and leaves the VM stopped.
        Assert.Equal("stopped", (await OkAsync(client.PostAsync($"/api/vms/{id}/snapshots/{sid}/revert", null))).GetProperty("state").GetString());
        await OkAsync(client.DeleteAsync($"/api/vms/{id}/snapshots/{sid}"), HttpStatusCode.NoContent);

        var rows = (await VmEventsAsync(id)).SkipWhile(r => r.Type != EventTypes.SnapshotCreated).ToList();
        Assert.Equal([EventTypes.SnapshotCreated, EventTypes.VmStateChanged, EventTypes.SnapshotReverted, EventTypes.SnapshotDeleted], rows.Select(r => r.Type));
        Assert.All(rows, r => Assert.Equal(userId, r.OwnerId));
        Assert.All(rows.Where(r => r.Type != EventTypes.VmStateChanged), r =>
        {
            Assert.Equal(sid, r.Data.GetProperty("snapshot_id").GetGuid());
            Assert.Equal(id, r.Data.GetProperty("vm_id").GetGuid());
            Assert.Equal("disk-only", r.Text("name"));
        });
        Assert.Equal([("running", "stopped", "snapshot.revert")], StateChanges(rows));
        await OkAsync(client.DeleteAsync($"/api/vms/{id}"), HttpStatusCode.NoContent);
    }

    /// <summary>Destroyed behind Limen's back: the reconciler, woken by libvirt's lifecycle event (not its 10 s sweep), tells it.</summary>
    [Fact]
    public async Task A_domain_stopped_behind_limens_back_is_told_as_a_libvirt_event()
    {
        var (client, userId, image) = await UserAsync("ev-observed");
        var id = (await VmTestKit.CreateVmAsync(client, image, "observed", start: true)).GetProperty("id").GetGuid();
        VmTestKit.Libvirt(Server, c =>
        {
            using var domain = c.LookupDomainByUuid(id)!;
            domain.Destroy();
            return true;
        });

        List<(string From, string To, string Reason)> changes = [];
        for (var deadline = DateTime.UtcNow.AddSeconds(5); DateTime.UtcNow < deadline; await Task.Delay(100))
        {
            changes = StateChanges(await VmEventsAsync(id)).Skip(1).ToList();
            if (changes.Count > 0)
            {
                break;
            }
        }

        Assert.Equal([("running", "stopped", "libvirt.event")], changes);
        Assert.Equal("stopped", (await OkAsync(client.GetAsync($"/api/vms/{id}"))).GetProperty("state").GetString());
        Assert.All(await VmEventsAsync(id), r => Assert.Equal(userId, r.OwnerId));
        await OkAsync(client.DeleteAsync($"/api/vms/{id}"), HttpStatusCode.NoContent);
    }

    [Fact]
    public async Task A_refused_action_and_a_quota_denial_emit_no_event()
    {
        var (client, userId, image) = await UserAsync("ev-refused");
        var id = (await VmTestKit.CreateVmAsync(client, image, "refused")).GetProperty("id").GetGuid();
        var before = await VmEventsAsync(id);
        await ProblemAssert.IsProblem(await client.PostAsync($"/api/vms/{id}/actions/resume", null), HttpStatusCode.Conflict, Problems.InvalidState);

        using var admin = Server.Client(await Server.AdminTokenAsync());
        await OkAsync(admin.PutAsJsonAsync($"/api/admin/users/{userId}/quota", new { max_memory_mb = 128, max_vms = 1 }));
        await ProblemAssert.IsProblem(await client.PatchAsJsonAsync($"/api/vms/{id}", new { memory_mb = 512 }), HttpStatusCode.Forbidden, Problems.QuotaExceeded);
        await ProblemAssert.IsProblem(await client.PostAsJsonAsync("/api/vms", new { name = "second", vcpus = 1, memory_mb = 128, disk_gb = 1, image_id = image }),
            HttpStatusCode.Forbidden, Problems.QuotaExceeded);

        Assert.Equal(before.Select(r => r.Id), (await VmEventsAsync(id)).Select(r => r.Id));
        Assert.DoesNotContain(await EventsAsync("owner_id", userId), r => r.Type == EventTypes.VmCreated && r.VmId != id);
        await OkAsync(client.DeleteAsync($"/api/vms/{id}"), HttpStatusCode.NoContent);
    }

    [Fact]
    public async Task Setting_and_resetting_quotas_emit_quota_changed_for_the_user_and_for_admins_only_for_the_system()
    {
        var (userId, _) = await Server.CreateUserAsync("ev-quota");
        using var admin = Server.Client(await Server.AdminTokenAsync());
        await OkAsync(admin.PutAsJsonAsync($"/api/admin/users/{userId}/quota", new { max_vms = 7 }));
        await OkAsync(admin.DeleteAsync($"/api/admin/users/{userId}/quota/max_vms"));
        await OkAsync(admin.DeleteAsync($"/api/admin/users/{userId}/quota/max_vms")); // nothing left to reset: no change

        var rows = (await EventsAsync("owner_id", userId)).Where(r => r.Type == EventTypes.QuotaChanged).ToList();
        Assert.Equal(2, rows.Count);
        Assert.All(rows, r => Assert.Equal("user", r.Text("scope")));
        Assert.All(rows, r => Assert.Equal(userId, r.Data.GetProperty("user_id").GetGuid()));
        Assert.Equal(7, rows[0].Data.GetProperty("limits").GetProperty("max_vms").GetInt32());
        Assert.NotEqual(7, rows[1].Data.GetProperty("limits").GetProperty("max_vms").GetInt32());

        // The class's own server and database: the system rows counted here are this test's.
        var systemBefore = (await EventsAsync("type", EventTypes.QuotaChanged)).Count(r => r.OwnerId is null);
        await OkAsync(admin.PutAsJsonAsync("/api/admin/quota", new { max_snapshots = 4321 }));
        await OkAsync(admin.DeleteAsync("/api/admin/quota/max_snapshots"));
        var system = (await EventsAsync("type", EventTypes.QuotaChanged)).Where(r => r.OwnerId is null).Skip(systemBefore).ToList();
        Assert.Equal(2, system.Count);
        Assert.All(system, r => Assert.Equal("system", r.Text("scope")));
        Assert.Equal(4321, system[0].Data.GetProperty("limits").GetProperty("max_snapshots").GetInt32());
    }

    /// <summary>
    /// A save whose update waits for a row lock must not hold the events lock meanwhile: its event is
    /// written after its other changes, so another writer's event commits while it waits.
    /// </summary>
    [Fact]
    public async Task A_save_waiting_for_a_row_lock_does_not_hold_up_other_events()
    {
        var factory = Server.Services.GetRequiredService<IDbContextFactory<LimenDbContext>>();
        var outlet = Server.Services.GetRequiredService<EventOutlet>();
        var (userId, _) = await Server.CreateUserAsync("ev-locker");
        await using (var setup = await factory.CreateDbContextAsync())
        {
            setup.UserQuotas.Add(new UserQuota { UserId = userId, UpdatedAt = DateTimeOffset.UtcNow });
            await setup.SaveChangesAsync();
        }

        await using var holder = new NpgsqlConnection(Server.Database.ConnectionString);
        await holder.OpenAsync();
        await using var hold = await holder.BeginTransactionAsync();
        await using (var select = new NpgsqlCommand($"SELECT 1 FROM user_quotas WHERE user_id = '{userId}' FOR UPDATE", holder, hold))
        {
            await select.ExecuteScalarAsync();
        }

        await using var waiter = await factory.CreateDbContextAsync();
        var row = await waiter.UserQuotas.SingleAsync(q => q.UserId == userId);
        row.MaxVms = 3;
        outlet.Stage(waiter, new EventDraft(EventTypes.QuotaChanged, userId, null, new { waiter = true }));
        var waiting = waiter.SaveChangesAsync();
        for (var deadline = DateTime.UtcNow.AddSeconds(10); await Server.Database.ScalarAsync(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'") == 0; await Task.Delay(50))
        {
            Assert.True(DateTime.UtcNow < deadline, "the save never waited for the row lock");
        }

        var other = outlet.PublishAsync(new EventDraft(EventTypes.QuotaChanged, userId, null, new { other = true }), CancellationToken.None);
        Assert.Same(other, await Task.WhenAny(other, Task.Delay(TimeSpan.FromSeconds(5))));
        Assert.False(waiting.IsCompleted);
        await hold.RollbackAsync();
        await waiting;

        var rows = (await EventsAsync("owner_id", userId)).Where(r => r.Type == EventTypes.QuotaChanged).ToList();
        Assert.Equal(2, rows.Count);
        Assert.True(rows[0].Data.TryGetProperty("other", out _));
        Assert.True(rows[1].Data.TryGetProperty("waiter", out _));
    }
}
