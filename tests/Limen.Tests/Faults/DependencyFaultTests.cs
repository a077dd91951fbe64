using System.Net.Http.Json;
using Limen.Tests.Infrastructure;
using Limen.Web;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace Limen.Tests.Faults;

/// <summary>
/// PostgreSQL restarted and libvirtd killed under a real `limen serve` (qemu:///system) while VMs
/// are being created, snapshotted and deleted: every answer is a success or a clean 503, and once
/// the dependency is back the server settles what the fault cut short, by itself.
/// </summary>
[Collection(QemuSystemCollection.Name)]
public sealed class DependencyFaultTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Before = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan Outage = TimeSpan.FromSeconds(4);
    private static readonly TimeSpan After = TimeSpan.FromSeconds(6);

    [Fact]
    public async Task PostgreSQL_restarted_under_running_requests_gives_successes_or_503s_and_a_consistent_end()
    {
        await using var postgres = await PrivatePostgres.StartAsync();
        await using var stack = await ServeStack.CreateAsync(connectionString: postgres.ConnectionString());
        await stack.StartAsync();
        var storm = await StormAroundAsync(stack, async () =>
        {
            await postgres.StopAsync();
            await Task.Delay(Outage);
            await postgres.StartAgainAsync();
        });

        storm.AssertOnlySuccessesOrCleanFailures(Problems.DatabaseUnavailable);
        await SettleAsync(stack);
        await storm.AssertOutcomesAccountedForAsync(stack);
    }

    [Fact]
    public async Task Libvirtd_killed_under_running_requests_gives_successes_or_503s_and_a_consistent_end()
    {
        await using var stack = await ServeStack.CreateAsync();
        await stack.StartAsync();
        try
        {
            var storm = await StormAroundAsync(stack, async () =>
            {
                await Libvirtd.KillAsync();
                await Task.Delay(Outage);
                await Libvirtd.EnsureRunningAsync();
            });

            storm.AssertOnlySuccessesOrCleanFailures(Problems.HypervisorUnavailable);
            await SettleAsync(stack);
            await storm.AssertOutcomesAccountedForAsync(stack);
        }
        finally
        {
            await Libvirtd.EnsureRunningAsync();
        }
    }

    /// <summary>The storm runs before, during and after <paramref name="fault"/>; the server must be alive throughout.</summary>
    private async Task<OperationStorm> StormAroundAsync(ServeStack stack, Func<Task> fault)
    {
        var image = await stack.RegisterBlankImageAsync();
        using var client = stack.Client(await stack.UserTokenAsync("storm-owner"));
        // Enough room for every VM the storm creates: the point is the fault, not the quota.
        using (var admin = stack.Client(await stack.AdminTokenAsync()))
        {
            var me = await ProblemAssert.Json(await client.GetAsync("/api/auth/me"));
            var roomy = new { max_vms = 1000, max_vcpus = 1000, max_memory_mb = 1_000_000, max_disk_gb = 1_000_000, max_snapshots = 1000 };
            foreach (var path in new[] { $"/api/admin/users/{me.GetProperty("id")}/quota", "/api/admin/quota" })
            {
                var quota = await admin.PutAsJsonAsync(path, roomy);
                Assert.True(quota.IsSuccessStatusCode, await quota.Content.ReadAsStringAsync());
            }
        }

        var storm = new OperationStorm();
        using var stop = new CancellationTokenSource();
        var running = storm.RunAsync(client, image, stop.Token);
        await Task.Delay(Before);
        await fault();
        await Task.Delay(After);
        stop.Cancel();
        await running;
        Assert.False(stack.Process!.HasExited, "limen serve died:\n" + string.Join('\n', stack.Process.Output.TakeLast(60)));
        // The server's own errors, for a failure below to be explained.
        foreach (var line in stack.Process.Output.Where(l => l.Contains("\"LogLevel\":\"Error\"", StringComparison.Ordinal) || l.Contains("\"LogLevel\":\"Critical\"", StringComparison.Ordinal)))
        {
            output.WriteLine(line);
        }

        output.WriteLine(string.Join(", ", storm.Answers.GroupBy(a => $"{a.Operation} {(int?)a.Status}").OrderBy(g => g.Key).Select(g => $"{g.Key}: {g.Count()}")));
        return storm;
    }

    /// <summary>Recovery settles what was cut short within a few reconciler passes.</summary>
    private static async Task SettleAsync(ServeStack stack)
    {
        string? last = null;
        await Eventually.WaitAsync(async () =>
        {
            try
            {
                await stack.AssertAgreementAsync();
                return true;
            }
            catch (XunitException e)
            {
                last = e.Message;
                return false;
            }
        }, TimeSpan.FromSeconds(90), "rows, domains and files to agree", () => last + "\n" + string.Join('\n', stack.Process!.Output.TakeLast(30)));
    }
}
