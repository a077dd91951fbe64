using System.Net;
using System.Net.Http.Json;
using Limen.Features.Hosts;
using Limen.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace Limen.Tests.Snapshots;

/// <summary>Revert proven on the tiny guest's real qcow2 disk and running memory (qemu:///system, TCG).</summary>
[Collection(QemuSystemCollection.Name)]
public sealed class SnapshotRevertTests
{
    private const string Offset = "512M";
    private static readonly TimeSpan BootTimeout = TimeSpan.FromSeconds(120);

    private static Task<LimenTestServer> StartAsync() => LimenTestServer.StartAsync(new Dictionary<string, string?> { ["Limen:Hypervisor:Uri"] = "qemu:///system" });

    [Fact]
    public async Task Reverting_a_stopped_vm_brings_back_the_disk_pattern_written_before_the_snapshot_and_delete_removes_its_data()
    {
        await using var server = await StartAsync();
        var image = await VmTestKit.RegisterTinyGuestAsync(server);
        var (_, token) = await server.CreateUserAsync("disk-reverter");
        using var client = server.Client(token);
        var vmId = (await VmTestKit.CreateVmAsync(client, image, "patterned")).GetProperty("id").GetGuid();
        try
        {
            var disk = VmTestKit.DiskPath(server, vmId);
            await QemuIoAsync(disk, $"write -P 0xaa {Offset} 64k");
            var snapshot = await ProblemAssert.Json(await client.PostAsJsonAsync($"/api/vms/{vmId}/snapshots", new { name = "pattern-aa" }));
            await QemuIoAsync(disk, $"write -P 0xbb {Offset} 64k");
            await QemuIoAsync(disk, $"read -P 0xbb {Offset} 64k");

            var reverted = await client.PostAsync($"/api/vms/{vmId}/snapshots/{snapshot.GetProperty("id")}/revert", null);
            Assert.Equal(HttpStatusCode.OK, reverted.StatusCode);
            Assert.Equal("stopped", (await ProblemAssert.Json(reverted)).GetProperty("state").GetString());
            await QemuIoAsync(disk, $"read -P 0xaa {Offset} 64k");

            Assert.Contains("limen-", await ExternalProcess.RunAsync("qemu-img", "snapshot", "-U", "-l", disk), StringComparison.Ordinal);
            Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync($"/api/vms/{vmId}/snapshots/{snapshot.GetProperty("id")}")).StatusCode);
            Assert.DoesNotContain("limen-", await ExternalProcess.RunAsync("qemu-img", "snapshot", "-U", "-l", disk), StringComparison.Ordinal);
        }
        finally
        {
            await client.DeleteAsync($"/api/vms/{vmId}");
        }
    }

    [Fact]
    public async Task A_running_vm_reverted_to_a_memory_snapshot_runs_on_from_that_moment()
    {
        await using var server = await StartAsync();
        var image = await VmTestKit.RegisterTinyGuestAsync(server);
        var (_, token) = await server.CreateUserAsync("memory-reverter");
        using var client = server.Client(token);
        var vmId = (await VmTestKit.CreateVmAsync(client, image, "remembers", start: true, memoryMb: 256)).GetProperty("id").GetGuid();
        try
        {
            var serial = server.Services.GetRequiredService<HostRegistry>().Local.SerialLogPath(vmId);
            await Eventually.WaitAsync(() => Task.FromResult(Banners(serial).Count >= 1), BootTimeout, "the first boot");
            Assert.EndsWith("boots=1", Banners(serial)[^1], StringComparison.Ordinal);

            var withMemory = await ProblemAssert.Json(await client.PostAsJsonAsync($"/api/vms/{vmId}/snapshots", new { name = "booted-once", include_memory = true }));
            Assert.Equal("running", withMemory.GetProperty("vm_state").GetString());
            await client.PostAsync($"/api/vms/{vmId}/actions/reboot", null);
            await Eventually.WaitAsync(() => Task.FromResult(Banners(serial).Count >= 2), BootTimeout, "the second boot");
            Assert.EndsWith("boots=2", Banners(serial)[^1], StringComparison.Ordinal);

            var reverted = await ProblemAssert.Json(await client.PostAsync($"/api/vms/{vmId}/snapshots/{withMemory.GetProperty("id")}/revert", null));
            Assert.Equal("running", reverted.GetProperty("state").GetString());
            // Running from the snapshot's moment: no boot happened, and the disk's boot counter is back at 1,
            // so the next boot counts 2 again (without the revert it would count 3).
            await Task.Delay(2000);
            Assert.Equal(2, Banners(serial).Count);
            await client.PostAsync($"/api/vms/{vmId}/actions/reboot", null);
            await Eventually.WaitAsync(() => Task.FromResult(Banners(serial).Count >= 3), BootTimeout, "the boot after the revert");
            Assert.EndsWith("boots=2", Banners(serial)[^1], StringComparison.Ordinal);

            var diskOnly = await ProblemAssert.Json(await client.PostAsJsonAsync($"/api/vms/{vmId}/snapshots", new { name = "no-memory" }));
            var stopped = await ProblemAssert.Json(await client.PostAsync($"/api/vms/{vmId}/snapshots/{diskOnly.GetProperty("id")}/revert", null));
            Assert.Equal("stopped", stopped.GetProperty("state").GetString());
            Assert.False(VmTestKit.Libvirt(server, c =>
            {
                using var domain = c.LookupDomainByUuid(vmId)!;
                return domain.IsActive;
            }));
        }
        finally
        {
            await client.DeleteAsync($"/api/vms/{vmId}");
        }
    }

    private static List<string> Banners(string serialLog)
    {
        if (!File.Exists(serialLog))
        {
            return [];
        }

        using var stream = new FileStream(serialLog, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        return new StreamReader(stream).ReadToEnd().Split('\n')
            .Where(l => l.Contains("LIMEN-GUEST READY", StringComparison.Ordinal)).Select(l => l.TrimEnd('\r')).ToList();
    }

    private static async Task QemuIoAsync(string disk, string command)
    {
        var output = await ExternalProcess.RunAsync("qemu-io", "-f", "qcow2", "-c", command, disk);
        Assert.DoesNotContain("Pattern verification failed", output, StringComparison.Ordinal);
    }
}
