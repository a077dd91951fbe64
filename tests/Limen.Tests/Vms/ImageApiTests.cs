using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using Limen.Features.Images;
using Limen.Tests.Infrastructure;
using Limen.Web;
using Microsoft.Extensions.DependencyInjection;

namespace Limen.Tests.Vms;

public sealed class ImageApiTests
{
    [Fact]
    public async Task Upload_streams_hashes_and_registers_and_every_user_can_list_but_only_admins_change()
    {
        await using var server = await LimenTestServer.StartAsync();
        var source = Path.Combine(server.StateDir, "source.qcow2");
        await ExternalProcess.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", source, "32M");
        var bytes = await File.ReadAllBytesAsync(source);
        using var admin = server.Client(await server.AdminTokenAsync());

        var uploaded = await admin.PostAsync("/api/admin/images/upload?name=uploaded&kind=disk", new ByteArrayContent(bytes));
        Assert.Equal(HttpStatusCode.Created, uploaded.StatusCode);
        var image = await ProblemAssert.Json(uploaded);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(bytes)), image.GetProperty("sha256").GetString());
        Assert.Equal("qcow2", image.GetProperty("format").GetString());
        Assert.Equal(32L * 1024 * 1024, image.GetProperty("virtual_size_bytes").GetInt64());

        var (_, userToken) = await server.CreateUserAsync("image-reader");
        using var user = server.Client(userToken);
        var list = await ProblemAssert.Json(await user.GetAsync("/api/images"));
        Assert.Contains(list.EnumerateArray(), i => i.GetProperty("name").GetString() == "uploaded");
        Assert.DoesNotContain("file_name", list.GetRawText(), StringComparison.Ordinal); // no host paths leave the server
        await ProblemAssert.IsProblem(await user.PostAsync("/api/admin/images/upload?name=x&kind=disk", new ByteArrayContent(bytes)), HttpStatusCode.Forbidden, Problems.Forbidden);

        var id = image.GetProperty("id").GetGuid();
        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync($"/api/admin/images/{id}")).StatusCode);
        Assert.Empty(Directory.GetFiles(server.Services.GetRequiredService<ImageStore>().Directory, "upload-*"));
    }

    [Fact]
    public async Task Oversized_uploads_are_413_and_leave_no_file()
    {
        await using var server = await LimenTestServer.StartAsync(new Dictionary<string, string?> { ["Limen:Images:MaxUploadBytes"] = "4096" });
        using var admin = server.Client(await server.AdminTokenAsync());
        var response = await admin.PostAsync("/api/admin/images/upload?name=big&kind=disk", new ByteArrayContent(new byte[64 * 1024]));
        await ProblemAssert.IsProblem(response, HttpStatusCode.RequestEntityTooLarge, Problems.PayloadTooLarge);
        Assert.Empty(Directory.GetFiles(server.Services.GetRequiredService<ImageStore>().Directory));
        Assert.Equal(0, await server.Database.ScalarAsync("SELECT count(*) FROM images"));
    }

    public static TheoryData<string> EscapingFileNames => ["../../etc/passwd", "/etc/passwd", ".hidden", "sub/dir.qcow2", "missing.qcow2", "link.qcow2"];

    [Theory]
    [MemberData(nameof(EscapingFileNames))]
    public async Task Registering_accepts_only_regular_files_inside_the_image_directory(string fileName)
    {
        await using var server = await LimenTestServer.StartAsync();
        var store = server.Services.GetRequiredService<ImageStore>();
        File.CreateSymbolicLink(Path.Combine(store.Directory, "link.qcow2"), "/etc/passwd");
        using var admin = server.Client(await server.AdminTokenAsync());
        var response = await admin.PostAsJsonAsync("/api/admin/images", new { name = "escape", file_name = fileName, kind = "disk" });
        var problem = await ProblemAssert.IsProblem(response, HttpStatusCode.BadRequest, Problems.Validation);
        Assert.Equal("file_name", problem.GetProperty("field").GetString());
        Assert.Equal(0, await server.Database.ScalarAsync("SELECT count(*) FROM images"));
    }

    [Fact]
    public async Task A_file_of_the_wrong_kind_is_refused()
    {
        await using var server = await LimenTestServer.StartAsync();
        var store = server.Services.GetRequiredService<ImageStore>();
        await ExternalProcess.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", Path.Combine(store.Directory, "disk.qcow2"), "16M");
        using var admin = server.Client(await server.AdminTokenAsync());
        var response = await admin.PostAsJsonAsync("/api/admin/images", new { name = "not-an-iso", file_name = "disk.qcow2", kind = "iso" });
        await ProblemAssert.IsProblem(response, HttpStatusCode.BadRequest, Problems.Validation);
    }
}
