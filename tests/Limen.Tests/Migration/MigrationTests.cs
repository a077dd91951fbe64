using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text.Json;
using Limen.Features.Hosts;
using Limen.Libvirt;
using Limen.Tests.Events;
using Limen.Tests.Infrastructure;
using Limen.Tests.RemoteConsole;
using Limen.Web;
using Microsoft.Extensions.DependencyInjection;

namespace Limen.Tests.Migration;

/// <summary>
/// VMs moving between two simulated hypervisor hosts (scripts/simhost.sh) through the API, with the
/// tiny guest really running: live with its disk copied, live on shared storage, offline, a target
/// that dies half way, a drain. The server's local host is host 2 and its second host is host 3,
/// so every VM here is a real QEMU guest on one of them.
/// </summary>
[Collection(SimulatedHostsCollection.Name)]
public sealed class MigrationTests(SimulatedHostsFixture hosts, Xunit.Abstractions.ITestOutputHelper output)
{
    private static readonly TimeSpan BootTimeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task A_running_vm_moves_live_to_the_other_host_and_back_without_a_reboot_with_its_disk_copied()
    {
        await using var server = await StartAsync(shared: false);
        var (host2, host3) = Registered(server);
        var image = await VmTestKit.RegisterTinyGuestAsync(server);
        using var admin = server.Client(await server.AdminTokenAsync());
        var (_, userToken) = await server.CreateUserAsync("mig-owner");
        using var owner = server.Client(userToken);
        var vm = await VmTestKit.CreateVmAsync(owner, image, "mig-live", start: true, memoryMb: 192);
        var id = vm.GetProperty("id").GetGuid();
        try
        {
            Assert.Equal(host2.Id, vm.GetProperty("host_id").GetGuid());
            await WaitForBannerAsync(host2.SerialLogPath(id));
            var uptimeBefore = await GuestSerial.UptimeAsync(hosts.Host2.Uri, id);
            var tag = Guid.NewGuid().ToString("N")[..8];
            await GuestSerial.RunAsync(hosts.Host2.Uri, id, $"echo {tag} | dd of=/dev/vda bs=512 seek=70000 conv=fsync,sync 2>/dev/null");
            await using var events = await SseClient.ConnectAsync(server.BaseAddress, userToken);
            // The owner watches the console while the VM moves.
            var (_, consoleUrl) = await ConsoleKit.TicketAsync(owner, id);
            using var console = await ConsoleKit.OpenAsync(consoleUrl);
            Assert.Equal("RFB 003.008\n", System.Text.Encoding.ASCII.GetString(await ConsoleKit.ReadExactAsync(console, 12)));

            // A user may not move VMs, not even their own.
            await ProblemAssert.IsProblem(await owner.PostAsJsonAsync($"/api/vms/{id}/actions/migrate", new { target_host_id = host3.Id }), HttpStatusCode.Forbidden, Problems.Forbidden);

            var clock = Stopwatch.StartNew();
            var moved = await Ok(await admin.PostAsJsonAsync($"/api/vms/{id}/actions/migrate", new { target_host_id = host3.Id }));
            output.WriteLine($"host2 → host3 (copy) in {clock.ElapsedMilliseconds} ms");
            Assert.Equal(host3.Id, moved.GetProperty("host_id").GetGuid());
            Assert.Equal("running", moved.GetProperty("state").GetString());

            // On host 3 now, running as migrated; gone from host 2; the disk moved folders.
            Assert.Equal((DomainState.Running, 2 /* VIR_DOMAIN_RUNNING_MIGRATED */), StateOn(hosts.Host3, id));
            Assert.Null(StateOn(hosts.Host2, id));
            Assert.True(File.Exists(host3.DiskPath(id)));
            Assert.False(File.Exists(host2.DiskPath(id)));

            // The console was told (a normal close: the page reconnects) and a new one reaches the VM on host 3.
            var (closeStatus, closeReason) = await ConsoleKit.ReadCloseAsync(console);
            Assert.Equal(WebSocketCloseStatus.NormalClosure, closeStatus);
            Assert.Equal("vm_migrated", closeReason);
            var (_, againUrl) = await ConsoleKit.TicketAsync(owner, id);
            using (var again = await ConsoleKit.OpenAsync(againUrl))
            {
                // Only host 3 has the domain now (asserted above), so this VNC server is host 3's.
                Assert.Equal("RFB 003.008\n", System.Text.Encoding.ASCII.GetString(await ConsoleKit.ReadExactAsync(again, 12)));
            }

            // The row is closed after the close frame went out.
            await Eventually.WaitAsync(async () => (await Ok(await admin.GetAsync($"/api/console/sessions?active=false&vm_id={id}")))
                .GetProperty("items").EnumerateArray().Any(session => session.GetProperty("end_reason").GetString() == "vm_migrated"),
                TimeSpan.FromSeconds(15), "the migrated session's row to say vm_migrated");

            // The same boot: uptime went on counting, the tag written before reads back, no new banner.
            var uptimeAfter = await GuestSerial.UptimeAsync(hosts.Host3.Uri, id);
            Assert.True(uptimeAfter > uptimeBefore, $"uptime {uptimeBefore} s before, {uptimeAfter} s after: the guest rebooted");
            Assert.Equal(tag, await GuestSerial.RunAsync(hosts.Host3.Uri, id, "dd if=/dev/vda bs=512 skip=70000 count=1 2>/dev/null | head -c 8"));
            Assert.DoesNotContain("LIMEN-GUEST READY", ReadShared(host3.SerialLogPath(id)), StringComparison.Ordinal);

            // The owner saw it happen: migrating, progress, then running again by the migration.
            var seen = await TakeUntilRunningAsync(events, id);
            var changes = seen.Where(m => m.Event == "vm.state_changed").Select(m => m.Json.GetProperty("data")).ToList();
            Assert.Equal(["running→migrating:migration", "migrating→running:migration.completed"],
                changes.Select(c => $"{c.GetProperty("from").GetString()}→{c.GetProperty("to").GetString()}:{c.GetProperty("reason").GetString()}"));
            var progress = seen.Where(m => m.Event == "vm.migration.progress").Select(m => m.Json.GetProperty("data")).ToList();
            Assert.NotEmpty(progress);
            Assert.All(progress, p => Assert.Equal(host3.Id, p.GetProperty("target_host_id").GetGuid()));
            // The last reading is the completed job's: nothing left, however quick the move was.
            Assert.Equal(0, progress[^1].GetProperty("data_remaining").GetInt64());

            var history = await Ok(await admin.GetAsync($"/api/vms/{id}/migrations"));
            output.WriteLine(history.ToString());
            var record = Assert.Single(history.EnumerateArray());
            Assert.Equal(("completed", "live", "copy"), (record.GetProperty("result").GetString(), record.GetProperty("mode").GetString(), record.GetProperty("storage").GetString()));
            Assert.True(record.GetProperty("downtime_ms").GetInt64() >= 0);
            Assert.Equal((progress[^1].GetProperty("data_total").GetInt64(), 0L), (record.GetProperty("data_total").GetInt64(), record.GetProperty("data_remaining").GetInt64()));
            Assert.Equal(1, await server.Database.ScalarAsync(
                $"SELECT count(*) FROM audit_logs WHERE action = 'vm.migrate' AND result = 'success' AND target_id = '{id}' AND details->>'target_host' = '{host3.Name}'"));

            // And back, letting placement choose: host 2 is the only other host.
            var back = await Ok(await admin.PostAsync($"/api/vms/{id}/actions/migrate", null));
            Assert.Equal(host2.Id, back.GetProperty("host_id").GetGuid());
            Assert.Equal(tag, await GuestSerial.RunAsync(hosts.Host2.Uri, id, "dd if=/dev/vda bs=512 skip=70000 count=1 2>/dev/null | head -c 8"));
            Assert.True(await GuestSerial.UptimeAsync(hosts.Host2.Uri, id) > uptimeAfter);
            Assert.Null(StateOn(hosts.Host3, id));
            Assert.False(File.Exists(host3.DiskPath(id)));
        }
        finally
        {
            await DeleteAsync(admin, id);
        }
    }

    [Fact]
    public async Task A_migration_whose_target_dies_midway_leaves_the_vm_running_on_the_source_and_nothing_on_the_target()
    {
        // Shared storage (both hosts registered with one disk folder) and a bandwidth cap: memory only, slowly.
        await using var server = await StartAsync(shared: true, new() { ["Limen:Migration:BandwidthMiBs"] = "4" });
        var (host2, host3) = Registered(server);
        var image = await VmTestKit.RegisterTinyGuestAsync(server);
        using var admin = server.Client(await server.AdminTokenAsync());
        var vm = await VmTestKit.CreateVmAsync(admin, image, "mig-fail", start: true, memoryMb: 192);
        var id = vm.GetProperty("id").GetGuid();
        try
        {
            await WaitForBannerAsync(host2.SerialLogPath(id));
            var uptimeBefore = await GuestSerial.UptimeAsync(hosts.Host2.Uri, id);
            var migrating = admin.PostAsJsonAsync($"/api/vms/{id}/actions/migrate", new { target_host_id = host3.Id });
            await Eventually.WaitAsync(async () => await server.Database.ScalarAsync(
                $"SELECT count(*) FROM vm_migrations WHERE vm_id = '{id}' AND data_total > 0 AND data_remaining > 0") == 1,
                TimeSpan.FromSeconds(30), "the migration to report progress");
            var during = await Ok(await admin.GetAsync($"/api/vms/{id}"));
            Assert.Equal("migrating", during.GetProperty("state").GetString());

            await hosts.Host3.KillAsync();
            var failed = await migrating;
            var problem = await ProblemAssert.IsProblem(failed, HttpStatusCode.Conflict, Problems.VmOperationFailed);
            output.WriteLine(problem.GetProperty("detail").GetString());

            // Still the same guest, running on host 2, and the row says so.
            var after = await Ok(await admin.GetAsync($"/api/vms/{id}"));
            Assert.Equal((host2.Id, "running"), (after.GetProperty("host_id").GetGuid(), after.GetProperty("state").GetString()));
            Assert.Equal(DomainState.Running, StateOn(hosts.Host2, id)?.State);
            Assert.True(await GuestSerial.UptimeAsync(hosts.Host2.Uri, id) > uptimeBefore);
            Assert.True(File.Exists(host2.DiskPath(id)));
            Assert.Equal(1, await server.Database.ScalarAsync($"SELECT count(*) FROM vm_migrations WHERE vm_id = '{id}' AND result = 'failed'"));

            // Host 3 back: whatever its half-made incoming domain was, it is gone once the server has looked.
            await hosts.Host3.RestartAsync();
            await Eventually.WaitAsync(async () =>
                StateOn(hosts.Host3, id) is null
                && await server.Database.ScalarAsync($"SELECT count(*) FROM vm_migrations WHERE vm_id = '{id}' AND target_cleanup_pending") == 0,
                TimeSpan.FromSeconds(60), "host 3 to hold nothing of the VM");
            Assert.Equal(DomainState.Running, StateOn(hosts.Host2, id)?.State);
        }
        finally
        {
            await hosts.Host3.RestartAsync();
            await DeleteAsync(admin, id);
        }
    }

    [Fact]
    public async Task A_stopped_vm_moves_offline_and_boots_on_its_new_host_with_its_disk()
    {
        await using var server = await StartAsync(shared: false);
        var (host2, host3) = Registered(server);
        var image = await VmTestKit.RegisterTinyGuestAsync(server);
        using var admin = server.Client(await server.AdminTokenAsync());
        var vm = await VmTestKit.CreateVmAsync(admin, image, "mig-offline", start: true, memoryMb: 192);
        var id = vm.GetProperty("id").GetGuid();
        try
        {
            await WaitForBannerAsync(host2.SerialLogPath(id));
            await Ok(await admin.PostAsync($"/api/vms/{id}/actions/stop", null));

            var moved = await Ok(await admin.PostAsJsonAsync($"/api/vms/{id}/actions/migrate", new { target_host_id = host3.Id }));
            Assert.Equal((host3.Id, "stopped"), (moved.GetProperty("host_id").GetGuid(), moved.GetProperty("state").GetString()));
            Assert.Equal(DomainState.Shutoff, StateOn(hosts.Host3, id)?.State);
            Assert.Null(StateOn(hosts.Host2, id));
            Assert.False(File.Exists(host2.DiskPath(id)));
            var history = await Ok(await admin.GetAsync($"/api/vms/{id}/migrations"));
            Assert.Equal("offline", Assert.Single(history.EnumerateArray()).GetProperty("mode").GetString());

            // It boots there from the disk that moved: the boot counter on it says this is its second boot.
            await Ok(await admin.PostAsync($"/api/vms/{id}/actions/start", null));
            await Eventually.WaitAsync(() => Task.FromResult(ReadShared(host3.SerialLogPath(id)).Contains("boots=2", StringComparison.Ordinal)),
                BootTimeout, "the second boot on host 3", () => ReadShared(host3.SerialLogPath(id)));
        }
        finally
        {
            await DeleteAsync(admin, id);
        }
    }

    [Fact]
    public async Task Drain_moves_every_vm_away_then_leaves_the_host_in_maintenance_and_reports_the_one_that_cannot_move()
    {
        await using var server = await StartAsync(shared: false);
        var (host2, host3) = Registered(server);
        var image = await VmTestKit.RegisterTinyGuestAsync(server);
        using var admin = server.Client(await server.AdminTokenAsync());
        // Placement spreads new VMs; the test gathers them on host 2 (stopped, so offline), then starts one.
        var running = await OnHost2Async(admin, image, "drain-running", host2);
        var stopped = await OnHost2Async(admin, image, "drain-stopped", host2);
        var pinned = await OnHost2Async(admin, image, "drain-snapshotted", host2);
        try
        {
            Assert.Equal(HttpStatusCode.Created, (await admin.PostAsJsonAsync($"/api/vms/{pinned}/snapshots", new { name = "keep" })).StatusCode);
            await Ok(await admin.PostAsync($"/api/vms/{running}/actions/start", null));
            await WaitForBannerAsync(host2.SerialLogPath(running));
            using var user = server.Client((await server.CreateUserAsync("drain-user")).Token);
            await ProblemAssert.IsProblem(await user.PostAsync($"/api/admin/hosts/{host2.Id}/drain", null), HttpStatusCode.Forbidden, Problems.Forbidden);

            var report = await Ok(await admin.PostAsync($"/api/admin/hosts/{host2.Id}/drain", null));
            output.WriteLine(report.ToString());
            Assert.Equal("maintenance", report.GetProperty("mode").GetString());
            Assert.Equal(new[] { running, stopped }.Order(), report.GetProperty("moved").EnumerateArray().Select(m => m.GetProperty("vm_id").GetGuid()).Order());
            Assert.All(report.GetProperty("moved").EnumerateArray(), m => Assert.Equal(host3.Id, m.GetProperty("target_host_id").GetGuid()));
            var stayed = Assert.Single(report.GetProperty("stayed").EnumerateArray());
            Assert.Equal(pinned, stayed.GetProperty("vm_id").GetGuid());
            Assert.Contains("snapshots", stayed.GetProperty("reason").GetString(), StringComparison.Ordinal);

            Assert.Equal(DomainState.Running, StateOn(hosts.Host3, running)?.State);
            Assert.Equal(DomainState.Shutoff, StateOn(hosts.Host3, stopped)?.State);
            Assert.Equal(DomainState.Shutoff, StateOn(hosts.Host2, pinned)?.State);
            var host = await Ok(await admin.GetAsync($"/api/admin/hosts/{host2.Id}"));
            Assert.Equal("maintenance", host.GetProperty("state").GetString());
            Assert.Equal(1, await server.Database.ScalarAsync($"SELECT count(*) FROM audit_logs WHERE action = 'host.drain' AND target_id = '{host2.Id}'"));

            // In maintenance, host 2 takes no new VM.
            var next = await VmTestKit.CreateVmAsync(admin, image, "drain-after");
            Assert.Equal(host3.Id, next.GetProperty("host_id").GetGuid());
            await DeleteAsync(admin, next.GetProperty("id").GetGuid());
        }
        finally
        {
            foreach (var id in new[] { running, stopped, pinned })
            {
                await DeleteAsync(admin, id);
            }
        }
    }

    [Fact]
    public async Task A_host_that_goes_away_leaves_its_running_vm_unknown_and_back_it_is_running_the_same_boot()
    {
        await using var server = await StartAsync(shared: false);
        var (host2, _) = Registered(server);
        var image = await VmTestKit.RegisterTinyGuestAsync(server);
        using var admin = server.Client(await server.AdminTokenAsync());
        var vm = await VmTestKit.CreateVmAsync(admin, image, "host-away", start: true);
        var id = vm.GetProperty("id").GetGuid();
        try
        {
            Assert.Equal(host2.Id, vm.GetProperty("host_id").GetGuid());
            await WaitForBannerAsync(host2.SerialLogPath(id));
            var uptime = await GuestSerial.UptimeAsync(hosts.Host2.Uri, id);

            await hosts.Host2.KillAsync();
            await Eventually.WaitAsync(async () => (await Ok(await admin.GetAsync($"/api/vms/{id}"))).GetProperty("state").GetString() == "unknown",
                TimeSpan.FromSeconds(45), "the VM to be unknown while its host is away");
            var away = await Ok(await admin.GetAsync($"/api/vms/{id}"));
            Assert.False(string.IsNullOrWhiteSpace(away.GetProperty("state_reason").GetString()), "an unknown VM says why");
            // Never deleted, never recreated elsewhere: host 3 has nothing of it.
            Assert.Null(StateOn(hosts.Host3, id));

            await hosts.Host2.RestartAsync();
            await Eventually.WaitAsync(async () => (await Ok(await admin.GetAsync($"/api/vms/{id}"))).GetProperty("state").GetString() == "running",
                TimeSpan.FromSeconds(45), "the VM to be running again once its host answers");
            Assert.True(await GuestSerial.UptimeAsync(hosts.Host2.Uri, id) > uptime, "the guest was restarted while its host was away");
        }
        finally
        {
            await hosts.Host2.RestartAsync();
            await DeleteAsync(admin, id);
        }
    }

    /// <summary>A stopped VM on host 2: created where placement puts it, moved there (offline) if that was elsewhere.</summary>
    private static async Task<Guid> OnHost2Async(HttpClient admin, Guid image, string name, RegisteredHost host2)
    {
        var vm = await VmTestKit.CreateVmAsync(admin, image, name);
        var id = vm.GetProperty("id").GetGuid();
        if (vm.GetProperty("host_id").GetGuid() != host2.Id)
        {
            var moved = await Ok(await admin.PostAsJsonAsync($"/api/vms/{id}/actions/migrate", new { target_host_id = host2.Id }));
            Assert.Equal(host2.Id, moved.GetProperty("host_id").GetGuid());
        }

        return id;
    }

    /// <summary>A server whose local host is host 2 and whose second host is host 3; with <paramref name="shared"/>, both use host 2's disk folder.</summary>
    private async Task<LimenTestServer> StartAsync(bool shared, Dictionary<string, string?>? more = null)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Limen:Hypervisor:Name"] = "host2",
            ["Limen:Hypervisor:Uri"] = hosts.Host2.Uri,
            ["Limen:Hypervisor:ConsoleAddress"] = hosts.Host2.Address,
            ["Limen:Hypervisor:DiskDir"] = hosts.Host2.DiskDir,
            ["Limen:Hypervisor:MigrationAddress"] = hosts.Host2.Address,
            ["Limen:Hosts:0:Name"] = "host3",
            ["Limen:Hosts:0:Uri"] = hosts.Host3.Uri,
            ["Limen:Hosts:0:ConsoleAddress"] = hosts.Host3.Address,
            ["Limen:Hosts:0:DiskDir"] = shared ? hosts.Host2.DiskDir : hosts.Host3.DiskDir,
            ["Limen:Hosts:0:MigrationAddress"] = hosts.Host3.Address,
            ["Limen:Migration:ProgressIntervalMs"] = "200",
        };
        foreach (var (key, value) in more ?? [])
        {
            settings[key] = value;
        }

        return await LimenTestServer.StartAsync(settings);
    }

    private static (RegisteredHost Host2, RegisteredHost Host3) Registered(LimenTestServer server)
    {
        var registry = server.Services.GetRequiredService<HostRegistry>();
        return (registry.All.Single(h => h.Name == "host2"), registry.All.Single(h => h.Name == "host3"));
    }

    /// <summary>The domain's state and reason on a simulated host, over a connection of the test's own; null when it has none.</summary>
    private static (DomainState State, int Reason)? StateOn(SimulatedHost host, Guid id)
    {
        using var connection = LibvirtConnection.Open(host.Uri);
        using var domain = connection.LookupDomainByUuid(id);
        return domain?.GetState();
    }

    /// <summary>The VM's events up to and including its next change to running.</summary>
    private static async Task<List<SseMessage>> TakeUntilRunningAsync(SseClient events, Guid vmId)
    {
        var seen = new List<SseMessage>();
        while (await events.NextAsync(TimeSpan.FromSeconds(10)) is { } message)
        {
            if (message.Data is null || !message.Json.TryGetProperty("vm_id", out var about) || about.ValueKind != JsonValueKind.String || about.GetGuid() != vmId)
            {
                continue;
            }

            seen.Add(message);
            if (message.Event == "vm.state_changed" && message.Json.GetProperty("data").GetProperty("to").GetString() == "running")
            {
                return seen;
            }
        }

        Assert.Fail($"no change to running among {seen.Count} events of the VM");
        return seen;
    }

    private static Task WaitForBannerAsync(string serialLog) =>
        Eventually.WaitAsync(() => Task.FromResult(ReadShared(serialLog).Contains("LIMEN-GUEST READY", StringComparison.Ordinal)), BootTimeout, "the guest's banner",
            () => ReadShared(serialLog));

    private static string ReadShared(string path)
    {
        if (!File.Exists(path))
        {
            return "";
        }

        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        return new StreamReader(stream).ReadToEnd();
    }

    /// <summary>The body of a 200 answer; anything else fails with the answer's text.</summary>
    private static async Task<JsonElement> Ok(HttpResponseMessage response)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}: {body}");
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    private static async Task DeleteAsync(HttpClient admin, Guid id)
    {
        var response = await admin.DeleteAsync($"/api/vms/{id}");
        Assert.True(response.StatusCode is HttpStatusCode.NoContent or HttpStatusCode.NotFound, await response.Content.ReadAsStringAsync());
    }
}
