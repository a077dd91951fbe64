using System.Diagnostics;
using System.Net;
using Limen.Tests.Events;
using Limen.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Limen.Tests.Cluster;

/// <summary>
/// The event stream end to end across two real `limen serve` replicas on qemu:///system: a VM
/// changed through one server is seen live by a client of the other, and so is a change libvirt
/// reports on its own.
/// </summary>
[Collection(QemuSystemCollection.Name)]
public sealed class EventStreamAcrossServersTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_vm_started_through_one_server_and_destroyed_behind_limens_back_reaches_a_client_of_the_other_within_1_s_and_2_s()
    {
        await using var stack = await ServeStack.CreateAsync();
        await stack.StartAsync(serverId: "srv-a");
        var b = await stack.StartReplicaAsync("srv-b");
        var image = await stack.RegisterBlankImageAsync();
        var token = await stack.UserTokenAsync("stream-owner");
        using var a = stack.Client(token);
        var vmId = (await VmTestKit.CreateVmAsync(a, image, "streamed", start: false, memoryMb: 64)).GetProperty("id").GetGuid();

        await using var stream = await SseClient.ConnectAsync(b.BaseAddress, token);
        Assert.Equal(HttpStatusCode.OK, stream.Response.StatusCode);
        var started = await a.PostAsync($"/api/vms/{vmId}/actions/start", null);
        var answered = Stopwatch.StartNew();
        Assert.Equal(HttpStatusCode.OK, started.StatusCode);
        var running = await NextStateChangeAsync(stream, vmId, TimeSpan.FromSeconds(1));
        output.WriteLine($"running seen on srv-b {answered.ElapsedMilliseconds} ms after srv-a answered");
        Assert.Equal(("stopped", "running", "action.start"), running);

        // `virsh destroy`: only libvirt's lifecycle event can tell the leader this fast (the sweep is 2 s
        // here, so the bound is what separates the two: the event arrives in a few hundred ms).
        ServeStack.Libvirt(c =>
        {
            using var domain = c.LookupDomainByUuid(vmId)!;
            domain.Destroy();
            return true;
        });
        var destroyed = Stopwatch.StartNew();
        var stopped = await NextStateChangeAsync(stream, vmId, TimeSpan.FromSeconds(2));
        output.WriteLine($"stopped seen on srv-b {destroyed.ElapsedMilliseconds} ms after the destroy");
        Assert.Equal(("running", "stopped", "libvirt.event"), stopped);
    }

    /// <summary>The next vm.state_changed of <paramref name="vmId"/> as (from, to, reason); fails after <paramref name="within"/>.</summary>
    private static async Task<(string, string, string)> NextStateChangeAsync(SseClient stream, Guid vmId, TimeSpan within)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < within)
        {
            var message = await stream.NextAsync(within - deadline.Elapsed);
            if (message?.Event == "vm.state_changed" && message.Json.GetProperty("vm_id").GetGuid() == vmId)
            {
                var data = message.Json.GetProperty("data");
                return (data.GetProperty("from").GetString()!, data.GetProperty("to").GetString()!, data.GetProperty("reason").GetString()!);
            }
        }

        throw new TimeoutException($"No vm.state_changed for {vmId} within {within.TotalMilliseconds} ms.");
    }
}
