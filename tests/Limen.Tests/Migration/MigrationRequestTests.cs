using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Limen.Features.Hosts;
using Limen.Tests.Infrastructure;
using Limen.Web;
using Microsoft.Extensions.DependencyInjection;

namespace Limen.Tests.Migration;

/// <summary>
/// What POST /api/vms/{id}/actions/migrate makes of its request before any host is touched, on a
/// server with one host (libvirt's test driver): the body is optional, a bad one is a 400 naming the
/// field, and a VM with nowhere to go is a 409 that leaves it as it was.
/// </summary>
public sealed class MigrationRequestTests
{
    [Fact]
    public async Task The_body_is_optional_bad_bodies_and_targets_are_400s_and_a_vm_with_nowhere_to_go_stays()
    {
        await using var server = await LimenTestServer.StartAsync();
        var image = await VmTestKit.RegisterBlankImageAsync(server);
        using var admin = server.Client(await server.AdminTokenAsync());
        var vm = await VmTestKit.CreateVmAsync(admin, image, "mig-request", start: true);
        var id = vm.GetProperty("id").GetGuid();
        var url = $"/api/vms/{id}/actions/migrate";
        var local = server.Services.GetRequiredService<HostRegistry>().Local.Id;

        // No body, even with a JSON Content-Type (curl -X POST -H 'content-type: application/json'): placement chooses, and finds no other host.
        using var empty = new ByteArrayContent([]);
        empty.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        var nowhere = await ProblemAssert.IsProblem(await admin.PostAsync(url, empty), HttpStatusCode.Conflict, Problems.Conflict);
        Assert.Contains("No other host", nowhere.GetProperty("detail").GetString(), StringComparison.Ordinal);
        await ProblemAssert.IsProblem(await admin.PostAsync(url, null), HttpStatusCode.Conflict, Problems.Conflict);

        var cases = new (HttpContent Body, string Field)[]
        {
            (new StringContent("""{"target_host_id":"not a guid"}""", Encoding.UTF8, "application/json"), "target_host_id"),
            (new StringContent("""{"target_host_id":""", Encoding.UTF8, "application/json"), "target_host_id"),
            (new StringContent("target_host_id=x", Encoding.UTF8, "text/plain"), "body"),
            (new StringContent($$"""{"target_host_id":"{{Guid.NewGuid()}}"}""", Encoding.UTF8, "application/json"), "target_host_id"),
            (new StringContent($$"""{"target_host_id":"{{local}}"}""", Encoding.UTF8, "application/json"), "target_host_id"),
        };
        foreach (var (body, field) in cases)
        {
            using (body)
            {
                var problem = await ProblemAssert.IsProblem(await admin.PostAsync(url, body), HttpStatusCode.BadRequest, Problems.Validation);
                Assert.Equal(field, problem.GetProperty("field").GetString());
            }
        }

        // Nothing moved and nothing was written but the refusals' audit rows.
        var after = await ProblemAssert.Json(await admin.GetAsync($"/api/vms/{id}"));
        Assert.Equal((local, "running"), (after.GetProperty("host_id").GetGuid(), after.GetProperty("state").GetString()));
        Assert.Equal(0, await server.Database.ScalarAsync($"SELECT count(*) FROM vm_migrations WHERE vm_id = '{id}'"));
        Assert.Equal(4, await server.Database.ScalarAsync(
            $"SELECT count(*) FROM audit_logs WHERE action = 'vm.migrate' AND result = 'failure' AND target_id = '{id}'"));
    }
}
