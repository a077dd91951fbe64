using System.Net.Http.Json;
using System.Text.Json;
using Limen.Features.Hosts;
using Limen.Features.Images;
using Limen.Libvirt;
using Microsoft.Extensions.DependencyInjection;

namespace Limen.Tests.Infrastructure;

/// <summary>Images and VMs for tests: real files in the server's image folder, registered through the API.</summary>
public static class VmTestKit
{
    public static string TinyGuestImage => Path.Combine(RepoPaths.Root, "guest", "out", "tiny-guest.qcow2");

    /// <summary>Registers a small blank qcow2 (enough for the test driver, which never reads it).</summary>
    public static async Task<Guid> RegisterBlankImageAsync(LimenTestServer server, string name = "blank")
    {
        var store = server.Services.GetRequiredService<ImageStore>();
        var fileName = name + ".qcow2";
        await ExternalProcess.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", Path.Combine(store.Directory, fileName), "64M");
        return await RegisterAsync(server, name, fileName, "disk");
    }

    /// <summary>Copies the tiny guest (built by guest/build.sh) into the server's image folder and registers it.</summary>
    public static async Task<Guid> RegisterTinyGuestAsync(LimenTestServer server)
    {
        if (!File.Exists(TinyGuestImage))
        {
            await ExternalProcess.RunAsync(Path.Combine(RepoPaths.Root, "guest", "build.sh"));
        }

        var store = server.Services.GetRequiredService<ImageStore>();
        File.Copy(TinyGuestImage, Path.Combine(store.Directory, "tiny-guest.qcow2"), overwrite: true);
        return await RegisterAsync(server, "tiny-guest", "tiny-guest.qcow2", "disk");
    }

    public static async Task<Guid> RegisterAsync(LimenTestServer server, string name, string fileName, string kind)
    {
        using var admin = server.Client(await server.AdminTokenAsync());
        var response = await admin.PostAsJsonAsync("/api/admin/images", new { name, file_name = fileName, kind });
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, body);
        return JsonDocument.Parse(body).RootElement.GetProperty("id").GetGuid();
    }

    public static async Task<JsonElement> CreateVmAsync(HttpClient client, Guid imageId, string name, bool start = false, int vcpus = 1, int memoryMb = 128, int diskGb = 1)
    {
        var response = await client.PostAsJsonAsync("/api/vms", new { name, vcpus, memory_mb = memoryMb, disk_gb = diskGb, image_id = imageId, start });
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == System.Net.HttpStatusCode.Created, body);
        return JsonDocument.Parse(body).RootElement;
    }

    /// <summary>Asks the server's own libvirt connection (the test driver's state lives in that connection).</summary>
    public static T Libvirt<T>(LimenTestServer server, Func<LibvirtConnection, T> query) =>
        server.Services.GetRequiredService<HostRegistry>().Local.Hypervisor.Run(query);

    public static bool DomainExists(LimenTestServer server, Guid vmId) => Libvirt(server, c =>
    {
        using var domain = c.LookupDomainByUuid(vmId);
        return domain is not null;
    });

    /// <summary>Files in the disk folder that belong to no domain: what a botched rollback would leave.</summary>
    public static List<string> OrphanDiskFiles(LimenTestServer server)
    {
        var domains = Libvirt(server, c => c.ListAllDomains().Select(d =>
        {
            using (d)
            {
                return d.Uuid.ToString();
            }
        }).ToList());
        return Directory.GetFiles(server.Services.GetRequiredService<HostRegistry>().Local.DiskDir)
            .Where(f => !domains.Any(d => Path.GetFileName(f).StartsWith(d, StringComparison.Ordinal)))
            .ToList();
    }

    public static string DiskPath(LimenTestServer server, Guid vmId) => server.Services.GetRequiredService<HostRegistry>().Local.DiskPath(vmId);
}
