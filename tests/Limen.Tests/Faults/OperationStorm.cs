using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Limen.Tests.Infrastructure;

namespace Limen.Tests.Faults;

/// <summary>
/// A few workers creating, snapshotting and deleting VMs through the API in a loop while a test
/// breaks something underneath; every answer is kept for the verdict afterwards.
/// </summary>
public sealed class OperationStorm
{
    private const int Workers = 3;
    private readonly ConcurrentQueue<Answer> answers = new();

    /// <param name="Name">The VM's name (unique per create), which identifies it when the create got no id back.</param>
    public sealed record Answer(string Operation, string Name, Guid? VmId, HttpStatusCode? Status, string? ProblemType, string? Error);

    public IReadOnlyCollection<Answer> Answers => answers;

    /// <summary>Runs until <paramref name="stop"/> is cancelled. Every second VM is deleted again, the others stay with a snapshot.</summary>
    public Task RunAsync(HttpClient client, Guid imageId, CancellationToken stop) =>
        Task.WhenAll(Enumerable.Range(0, Workers).Select(worker => Task.Run(async () =>
        {
            for (var cycle = 0; !stop.IsCancellationRequested; cycle++)
            {
                var name = $"storm-{worker}-{cycle}";
                var created = await SendAsync("vm.create", name, null,
                    () => client.PostAsJsonAsync("/api/vms", new { name, vcpus = 1, memory_mb = 64, disk_gb = 1, image_id = imageId }));
                if (created is { } vmId)
                {
                    await SendAsync("snapshot.create", name, vmId, () => client.PostAsJsonAsync($"/api/vms/{vmId}/snapshots", new { name = "s" }));
                    if (cycle % 2 == 0)
                    {
                        await SendAsync("vm.delete", name, vmId, () => client.DeleteAsync($"/api/vms/{vmId}"));
                    }
                }

                await Task.Delay(100, CancellationToken.None);
            }
        }, CancellationToken.None)));

    /// <summary>The created VM's id for a 201 to a create; null otherwise.</summary>
    private async Task<Guid?> SendAsync(string operation, string name, Guid? vmId, Func<Task<HttpResponseMessage>> send)
    {
        try
        {
            using var response = await send();
            var body = await response.Content.ReadAsStringAsync();
            string? problemType = null;
            if (response.Content.Headers.ContentType?.MediaType == "application/problem+json")
            {
                problemType = JsonDocument.Parse(body).RootElement.GetProperty("type").GetString();
            }

            var id = operation == "vm.create" && response.StatusCode == HttpStatusCode.Created
                ? JsonDocument.Parse(body).RootElement.GetProperty("id").GetGuid()
                : vmId;
            answers.Enqueue(new Answer(operation, name, id, response.StatusCode, problemType, response.IsSuccessStatusCode || problemType is not null ? null : body));
            return operation == "vm.create" && response.StatusCode == HttpStatusCode.Created ? id : null;
        }
        catch (HttpRequestException e)
        {
            answers.Enqueue(new Answer(operation, name, vmId, null, null, e.Message));
            return null;
        }
    }

    /// <summary>
    /// Every answer is a success or a 503 problem of one of <paramref name="unavailable"/>, and both
    /// kinds really happened: the fault hit requests, and the server served again.
    /// </summary>
    public void AssertOnlySuccessesOrCleanFailures(params string[] unavailable)
    {
        var bad = answers.Where(a => !(a.Status is { } s && (int)s is >= 200 and < 300)
            && !(a.Status == HttpStatusCode.ServiceUnavailable && unavailable.Contains(a.ProblemType))).ToList();
        Assert.True(bad.Count == 0, "answers that are neither a success nor a clean 503:\n" + string.Join('\n', bad));
        Assert.Contains(answers, a => a.Status == HttpStatusCode.ServiceUnavailable);
        Assert.Contains(answers, a => a.Status == HttpStatusCode.Created);
    }

    /// <summary>
    /// What exists at the end was either confirmed to its requester or is accounted for by a recovery
    /// audit row; what was confirmed deleted is gone; what was confirmed created and never deleted is there.
    /// </summary>
    public async Task AssertOutcomesAccountedForAsync(ServeStack stack)
    {
        var vms = await stack.QueryAsync("SELECT id, name FROM vms", r => (Id: r.GetGuid(0), Name: r.GetString(1)));
        var snapshots = await stack.QueryAsync("SELECT id, vm_id FROM vm_snapshots", r => (Id: r.GetGuid(0), VmId: r.GetGuid(1)));
        var recovered = await stack.QueryAsync(
            "SELECT action, result, target_id, details->>'name', details->>'snapshot_id' FROM audit_logs WHERE error_code = 'interrupted'",
            r => (Action: r.GetString(0), Result: r.GetString(1), VmId: Guid.Parse(r.GetString(2)), Name: r.GetString(3), SnapshotId: r.IsDBNull(4) ? (Guid?)null : Guid.Parse(r.GetString(4))));
        bool Answered(string operation, Func<Answer, bool> match, HttpStatusCode status) =>
            answers.Any(a => a.Operation == operation && a.Status == status && match(a));

        foreach (var vm in vms)
        {
            Assert.True(Answered("vm.create", a => a.Name == vm.Name, HttpStatusCode.Created)
                || recovered.Any(r => r is { Action: "vm.create", Result: "success" } && r.VmId == vm.Id),
                $"VM {vm.Name} exists, but nobody was told and no recovery audited it");
            Assert.False(Answered("vm.delete", a => a.VmId == vm.Id, HttpStatusCode.NoContent), $"VM {vm.Name} was deleted (204) but exists");
        }

        foreach (var created in answers.Where(a => a.Operation == "vm.create" && a.Status == HttpStatusCode.Created))
        {
            var deleted = vms.All(v => v.Id != created.VmId);
            Assert.True(!deleted || Answered("vm.delete", a => a.VmId == created.VmId, HttpStatusCode.NoContent)
                || recovered.Any(r => r.Action == "vm.delete" && r.VmId == created.VmId), $"VM {created.Name} was created (201) and vanished unaccounted");
        }

        foreach (var snapshot in snapshots)
        {
            Assert.True(Answered("snapshot.create", a => a.VmId == snapshot.VmId, HttpStatusCode.Created)
                || recovered.Any(r => r is { Action: "snapshot.create", Result: "success" } && r.SnapshotId == snapshot.Id),
                $"snapshot {snapshot.Id} exists, but nobody was told and no recovery audited it");
        }
    }
}
