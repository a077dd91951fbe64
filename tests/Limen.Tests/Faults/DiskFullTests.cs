using System.Net;
using System.Net.Http.Json;
using Limen.Tests.Infrastructure;
using Limen.Web;

namespace Limen.Tests.Faults;

/// <summary>The disk folder on a small tmpfs, filled to the last page: creates and snapshots answer 507 and keep nothing.</summary>
[Collection(QemuSystemCollection.Name)]
public sealed class DiskFullTests
{
    private const string Filler = "filler";

    [Fact]
    public async Task Create_and_snapshots_on_a_full_disk_folder_answer_507_and_leave_rows_domains_and_files_as_they_were()
    {
        await using var tmpfs = await TmpfsMount.MountAsync(48);
        // A 1 GiB overlay starts at a few hundred KiB: thin disks may overcommit the 48 MiB folder (placement asks for the whole disk by default).
        await using var stack = await ServeStack.CreateAsync(diskDir: tmpfs.Path,
            settings: new Dictionary<string, string> { ["Limen__Placement__DiskOvercommit"] = "100" });
        await stack.StartAsync();
        var image = await stack.RegisterBlankImageAsync();
        using (var admin = stack.Client(await stack.AdminTokenAsync()))
        {
            // The derived system disk budget of a 48 MiB file system is 0 GiB; the point here is the real space.
            (await admin.PutAsJsonAsync("/api/admin/quota", new { max_disk_gb = 100 })).EnsureSuccessStatusCode();
        }

        using var client = stack.Client(await stack.UserTokenAsync("full-disk-owner"));

        await FillAsync(tmpfs.Path);
        var refused = await client.PostAsJsonAsync("/api/vms", new { name = "no-room", vcpus = 1, memory_mb = 64, disk_gb = 1, image_id = image });
        await ProblemAssert.IsProblem(refused, HttpStatusCode.InsufficientStorage, Problems.InsufficientStorage);
        Assert.True(refused.Headers.Contains("X-Request-Id"));
        Assert.Equal(0, await stack.ScalarAsync("SELECT count(*) FROM vms"));
        Assert.Empty(stack.Domains());
        Assert.Equal([Filler], Directory.GetFiles(tmpfs.Path).Select(Path.GetFileName));
        Assert.Equal(1, await stack.ScalarAsync(
            "SELECT count(*) FROM audit_logs WHERE action = 'vm.create' AND result = 'failure' AND error_code = 'no_space' AND details->>'name' = 'no-room'"));

        // With room again the same create works: it was the space, nothing else.
        tmpfs.Remove(Filler);
        var stopped = (await VmTestKit.CreateVmAsync(client, image, "no-room", memoryMb: 64)).GetProperty("id").GetGuid();
        var running = (await VmTestKit.CreateVmAsync(client, image, "running", start: true, memoryMb: 64)).GetProperty("id").GetGuid();

        // A stopped VM's snapshot is qemu-img's (ENOSPC); a running VM's is QEMU writing its RAM (it says EIO).
        await FillAsync(tmpfs.Path);
        foreach (var (vm, body) in new[] { (stopped, (object)new { name = "disk-only" }), (running, new { name = "with-memory", include_memory = true }) })
        {
            var snapshot = await client.PostAsJsonAsync($"/api/vms/{vm}/snapshots", body);
            await ProblemAssert.IsProblem(snapshot, HttpStatusCode.InsufficientStorage, Problems.InsufficientStorage);
            Assert.Equal(0, (await ProblemAssert.Json(await client.GetAsync($"/api/vms/{vm}/snapshots"))).GetArrayLength());
        }

        Assert.Equal(0, await stack.ScalarAsync("SELECT count(*) FROM vm_snapshots"));
        Assert.Equal(2, await stack.ScalarAsync("SELECT count(*) FROM audit_logs WHERE action = 'snapshot.create' AND error_code = 'no_space'"));
        var domains = stack.Domains();
        Assert.All(domains.Values, d => Assert.Empty(d.Snapshots));
        Assert.True(domains[running].Active);
        Assert.Equal("running", (await ProblemAssert.Json(await client.GetAsync($"/api/vms/{running}"))).GetProperty("state").GetString());
        await stack.AssertAgreementAsync(Filler);

        tmpfs.Remove(Filler);
        var taken = await client.PostAsJsonAsync($"/api/vms/{stopped}/snapshots", new { name = "disk-only" });
        Assert.Equal(HttpStatusCode.Created, taken.StatusCode);
        await stack.AssertAgreementAsync();
    }

    /// <summary>Writes until the file system refuses another page.</summary>
    private static async Task FillAsync(string directory)
    {
        await using var file = new FileStream(Path.Combine(directory, Filler), FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 0);
        var block = new byte[1024 * 1024];
        Random.Shared.NextBytes(block);
        foreach (var size in new[] { block.Length, 4096 })
        {
            try
            {
                while (true)
                {
                    await file.WriteAsync(block.AsMemory(0, size));
                }
            }
            catch (IOException)
            {
                // full at this granularity; go on with smaller writes
            }
        }

        Assert.True(new DriveInfo(directory).AvailableFreeSpace < 4096, "the tmpfs is not full");
    }
}
