using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Limen.Hosting;
using Limen.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Limen.Tests.Faults;

/// <summary>
/// `limen serve` SIGKILLed at every crash point of VM create and delete and of snapshot create,
/// revert and delete (qemu:///system). Each case proves the half-done state was really there
/// after the kill, then starts the server again and proves that it settled the operation: rows,
/// domains and files agree, and an audit row says whether it was completed or rolled back.
/// </summary>
[Collection(QemuSystemCollection.Name)]
public sealed class CrashRecoveryTests(ITestOutputHelper output)
{
    private const string Offset = "512M";
    private static readonly TimeSpan RecoveryTimeout = TimeSpan.FromSeconds(60);

    private enum Operation
    {
        CreateVm,
        DeleteVm,
        CreateSnapshot,
        Revert,
        DeleteSnapshot,
    }

    /// <param name="Completes">true: recovery finishes the operation; false: it rolls it back.</param>
    /// <param name="Live">The VM runs (a snapshot of a running VM, reverted disk-only, ends stopped).</param>
    private sealed record Scenario(Operation Operation, string Action, bool Completes, bool Live = false);

    /// <summary>Every crash point the server knows; one without a scenario fails its case.</summary>
    public static TheoryData<string> Points => new(CrashPoints.All);

    private static readonly Dictionary<string, Scenario> Scenarios = new()
    {
        [CrashPoints.VmCreateRowInserted] = new(Operation.CreateVm, "vm.create", Completes: false),
        [CrashPoints.VmCreateDiskCreated] = new(Operation.CreateVm, "vm.create", Completes: false),
        [CrashPoints.VmCreateDomainDefined] = new(Operation.CreateVm, "vm.create", Completes: true),
        [CrashPoints.VmDeleteMarked] = new(Operation.DeleteVm, "vm.delete", Completes: true),
        [CrashPoints.VmDeleteDomainRemoved] = new(Operation.DeleteVm, "vm.delete", Completes: true),
        [CrashPoints.VmDeleteFilesRemoved] = new(Operation.DeleteVm, "vm.delete", Completes: true),
        [CrashPoints.SnapshotCreateRowInserted] = new(Operation.CreateSnapshot, "snapshot.create", Completes: false),
        [CrashPoints.SnapshotCreateTaken] = new(Operation.CreateSnapshot, "snapshot.create", Completes: true),
        [CrashPoints.SnapshotRevertMarked] = new(Operation.Revert, "snapshot.revert", Completes: true),
        [CrashPoints.SnapshotRevertDiskReverted] = new(Operation.Revert, "snapshot.revert", Completes: true, Live: true),
        [CrashPoints.SnapshotRevertDone] = new(Operation.Revert, "snapshot.revert", Completes: true),
        [CrashPoints.SnapshotDeleteMarked] = new(Operation.DeleteSnapshot, "snapshot.delete", Completes: true),
        [CrashPoints.SnapshotDeleteRemoved] = new(Operation.DeleteSnapshot, "snapshot.delete", Completes: true),
    };

    [Theory]
    [MemberData(nameof(Points))]
    public async Task Serve_killed_at_the_point_leaves_an_intent_that_the_next_start_settles_and_audits(string point)
    {
        Assert.True(Scenarios.TryGetValue(point, out var scenario), $"crash point {point} has no scenario here");
        await using var stack = await ServeStack.CreateAsync();
        await stack.StartAsync(crashAt: point);
        var image = await stack.RegisterBlankImageAsync();
        var token = await stack.UserTokenAsync("crash-owner");
        Guid? vmId = null;
        Guid? snapshotId = null;
        using (var client = stack.Client(token))
        {
            if (scenario.Operation != Operation.CreateVm)
            {
                vmId = (await VmTestKit.CreateVmAsync(client, image, "victim", start: scenario.Live, memoryMb: 64)).GetProperty("id").GetGuid();
            }

            if (scenario.Operation == Operation.Revert && !scenario.Live)
            {
                await QemuIoAsync(stack.DiskPath(vmId!.Value), $"write -P 0xaa {Offset} 64k");
            }

            if (scenario.Operation is Operation.Revert or Operation.DeleteSnapshot)
            {
                snapshotId = (await CreatedAsync(await client.PostAsJsonAsync($"/api/vms/{vmId}/snapshots", new { name = "before" }))).GetProperty("id").GetGuid();
            }

            if (scenario.Operation == Operation.Revert && !scenario.Live)
            {
                await QemuIoAsync(stack.DiskPath(vmId!.Value), $"write -P 0xbb {Offset} 64k");
            }

            // The request the server dies in: it never answers.
            var dying = scenario.Operation switch
            {
                Operation.CreateVm => client.PostAsJsonAsync("/api/vms", new { name = "victim", vcpus = 1, memory_mb = 64, disk_gb = 1, image_id = image }),
                Operation.DeleteVm => client.DeleteAsync($"/api/vms/{vmId}"),
                Operation.CreateSnapshot => client.PostAsJsonAsync($"/api/vms/{vmId}/snapshots", new { name = "interrupted" }),
                Operation.Revert => client.PostAsync($"/api/vms/{vmId}/snapshots/{snapshotId}/revert", null),
                _ => client.DeleteAsync($"/api/vms/{vmId}/snapshots/{snapshotId}"),
            };
            // Usually wrapped as HttpRequestException; a connection the kill catches half-opened can
            // surface as the bare SocketException ("Transport endpoint is not connected").
            var refused = await Assert.ThrowsAnyAsync<Exception>(() => dying);
            Assert.True(refused is HttpRequestException or System.Net.Sockets.SocketException, refused.ToString());
            await stack.AssertKilledAtAsync(point);
        }

        vmId ??= (await stack.QueryAsync("SELECT id FROM vms", r => r.GetGuid(0))).Single();
        snapshotId ??= (await stack.QueryAsync("SELECT id FROM vm_snapshots", r => r.GetGuid(0))).SingleOrDefault();
        await AssertHalfDoneAsync(stack, point, vmId.Value, snapshotId);

        var restarted = Stopwatch.StartNew();
        await stack.StartAsync();
        var audit = await WaitForRecoveryAuditAsync(stack, scenario.Action, vmId.Value);
        output.WriteLine($"{point}: settled {restarted.ElapsedMilliseconds} ms after the restart began: {audit.Result} {audit.Details}");
        Assert.Equal(scenario.Completes ? "success" : "failure", audit.Result);
        Assert.Equal(scenario.Completes ? "completed" : "rolled_back", JsonDocument.Parse(audit.Details).RootElement.GetProperty("recovery").GetString());

        await AssertSettledAsync(stack, scenario, vmId.Value, snapshotId);
        await stack.AssertAgreementAsync();
        // Exactly one verdict for the one interrupted operation.
        Assert.Equal(1, await stack.ScalarAsync("SELECT count(*) FROM audit_logs WHERE error_code = 'interrupted'"));
    }

    /// <summary>What the killed server left: the intent in the database, and exactly the steps before the point.</summary>
    private static async Task AssertHalfDoneAsync(ServeStack stack, string point, Guid vmId, Guid? snapshotId)
    {
        var vmState = (await stack.QueryAsync("SELECT state FROM vms", r => r.GetString(0))).Single();
        var snapshotState = (await stack.QueryAsync("SELECT state FROM vm_snapshots", r => r.GetString(0))).SingleOrDefault();
        var domains = stack.Domains();
        var diskExists = File.Exists(stack.DiskPath(vmId));
        var libvirtSnapshot = snapshotId is { } sid && domains.TryGetValue(vmId, out var d) && d.Snapshots.Contains("limen-" + sid.ToString("N"));
        (string Vm, bool Disk, bool Domain, string? Snapshot, bool InLibvirt) expected = point switch
        {
            CrashPoints.VmCreateRowInserted => ("creating", false, false, null, false),
            CrashPoints.VmCreateDiskCreated => ("creating", true, false, null, false),
            CrashPoints.VmCreateDomainDefined => ("creating", true, true, null, false),
            CrashPoints.VmDeleteMarked => ("deleting", true, true, null, false),
            CrashPoints.VmDeleteDomainRemoved => ("deleting", true, false, null, false),
            CrashPoints.VmDeleteFilesRemoved => ("deleting", false, false, null, false),
            CrashPoints.SnapshotCreateRowInserted => ("stopped", true, true, "creating", false),
            CrashPoints.SnapshotCreateTaken => ("stopped", true, true, "creating", true),
            CrashPoints.SnapshotRevertMarked or CrashPoints.SnapshotRevertDone => ("stopped", true, true, "reverting", true),
            CrashPoints.SnapshotRevertDiskReverted => ("running", true, true, "reverting", true),
            CrashPoints.SnapshotDeleteMarked => ("stopped", true, true, "deleting", true),
            CrashPoints.SnapshotDeleteRemoved => ("stopped", true, true, "deleting", false),
            _ => throw new InvalidOperationException($"no expectation for {point}"),
        };
        Assert.Equal(expected, (vmState, diskExists, domains.ContainsKey(vmId), snapshotState, libvirtSnapshot));
        if (point == CrashPoints.SnapshotRevertDiskReverted)
        {
            // Reverted to the snapshot's paused moment, not yet powered off: the step the point sits in.
            Assert.True(domains[vmId].Active);
        }
    }

    private static async Task AssertSettledAsync(ServeStack stack, Scenario scenario, Guid vmId, Guid? snapshotId)
    {
        var vms = await stack.QueryAsync("SELECT id, state FROM vms", r => (Id: r.GetGuid(0), State: r.GetString(1)));
        var snapshots = await stack.QueryAsync("SELECT id FROM vm_snapshots", r => r.GetGuid(0));
        switch (scenario.Operation)
        {
            case Operation.CreateVm when scenario.Completes:
                Assert.Equal((vmId, "stopped"), Assert.Single(vms));
                break;
            case Operation.CreateVm or Operation.DeleteVm:
                Assert.Empty(vms);
                Assert.False(File.Exists(stack.DiskPath(vmId)));
                break;
            case Operation.CreateSnapshot:
                Assert.Equal(scenario.Completes ? 1 : 0, snapshots.Count);
                break;
            case Operation.Revert:
                Assert.Equal((vmId, "stopped"), Assert.Single(vms));
                Assert.False(stack.Domains()[vmId].Active);
                if (!scenario.Live)
                {
                    // The disk is the snapshot's again, whether or not libvirt had got to it before the kill.
                    await QemuIoAsync(stack.DiskPath(vmId), $"read -P 0xaa {Offset} 64k");
                }

                break;
            default:
                Assert.DoesNotContain(snapshotId!.Value, snapshots);
                break;
        }

        // The API agrees with the tables.
        using var admin = stack.Client(await stack.AdminTokenAsync());
        var get = await admin.GetAsync($"/api/vms/{vmId}");
        Assert.Equal(vms.Count == 1 ? HttpStatusCode.OK : HttpStatusCode.NotFound, get.StatusCode);
    }

    private static async Task<(string Result, string Details)> WaitForRecoveryAuditAsync(ServeStack stack, string action, Guid vmId)
    {
        (string Result, string Details)? found = null;
        await Eventually.WaitAsync(async () =>
        {
            var rows = await stack.QueryAsync(
                $"SELECT result, details::text FROM audit_logs WHERE action = '{action}' AND error_code = 'interrupted' AND target_id = '{vmId}'",
                r => (r.GetString(0), r.GetString(1)));
            found = rows.Count == 1 ? rows[0] : null;
            return found is not null;
        }, RecoveryTimeout, $"the recovery's {action} audit row", () => string.Join('\n', stack.Process!.Output.TakeLast(40)));
        return found!.Value;
    }

    private static async Task<JsonElement> CreatedAsync(HttpResponseMessage response)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, body);
        return JsonDocument.Parse(body).RootElement;
    }

    private static async Task QemuIoAsync(string disk, string command)
    {
        var result = await ExternalProcess.RunAsync("qemu-io", "-f", "qcow2", "-c", command, disk);
        Assert.DoesNotContain("Pattern verification failed", result, StringComparison.Ordinal);
    }
}
