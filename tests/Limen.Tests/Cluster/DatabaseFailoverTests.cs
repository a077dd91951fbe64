using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Limen.Features.Cluster;
using Limen.Tests.Events;
using Limen.Tests.Infrastructure;
using Limen.Web;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace Limen.Tests.Cluster;

/// <summary>
/// PostgreSQL fails over under two real `limen serve` replicas: a primary and a synchronous streaming
/// standby on loopback ports, both in the servers' connection string (Npgsql multi-host,
/// `Target Session Attributes=primary`). While both servers create VMs without pause, the primary
/// is stopped and, a moment later, the standby promoted — the switch an operator or Patroni makes.
/// </summary>
[Collection(QemuSystemCollection.Name)]
public sealed class DatabaseFailoverTests(ITestOutputHelper output)
{
    /// <summary>Issue 13: every server continues within this, without a restart.</summary>
    private static readonly TimeSpan Continue = TimeSpan.FromSeconds(30);

    /// <summary>No request may take longer than this, switch or not.</summary>
    private static readonly TimeSpan ClientTimeout = TimeSpan.FromSeconds(15);

    /// <summary>Between stopping the primary and promoting the standby: the outage every client sees.</summary>
    private static readonly TimeSpan Detection = TimeSpan.FromSeconds(2);

    private sealed record Answer(string Server, string Name, TimeSpan Sent, TimeSpan Answered, int? Status, string? MediaType, string? ProblemType,
        Guid? VmId, string? RequestId, string? Error);

    private sealed record HealthSample(string Server, TimeSpan At, int Status, string? Db, bool Leader);

    [Fact]
    public async Task The_primary_stopped_and_the_standby_promoted_fails_requests_cleanly_and_both_servers_continue_within_30_s_with_nothing_acknowledged_lost()
    {
        await using var primary = await PrivatePostgres.StartAsync();
        await using var standby = await primary.StartStandbyAsync();
        await using var stack = await ServeStack.CreateAsync(connectionString: PrivatePostgres.MultiHostConnectionString(primary, standby));
        await stack.StartAsync(serverId: "srv-a");
        var replica = await stack.StartReplicaAsync("srv-b");
        var image = await stack.RegisterBlankImageAsync();
        var token = await stack.UserTokenAsync("failover-owner");
        await MakeRoomAsync(stack, token);
        var servers = new Dictionary<string, Uri> { ["srv-a"] = stack.BaseAddress!, ["srv-b"] = replica.BaseAddress };
        await using var stream = await SseClient.ConnectAsync(replica.BaseAddress, token);

        var clock = Stopwatch.StartNew();
        var answers = new ConcurrentQueue<Answer>();
        var health = new ConcurrentQueue<HealthSample>();
        using var stop = new CancellationTokenSource();
        var load = Task.WhenAll(servers.Select(s => Task.Run(() => CreateVmsAsync(s.Key, s.Value, token, image, clock, answers, stop.Token)))
            .Concat(servers.Select(s => Task.Run(() => PollHealthAsync(s.Key, s.Value, clock, health, stop.Token)))));
        await Eventually.WaitAsync(() => Task.FromResult(servers.Keys.All(s => answers.Count(a => a.Server == s && a.Status == 201) >= 2)),
            TimeSpan.FromSeconds(60), "two acknowledged creates through each server before the switch", () => Timeline(answers));

        var stopping = clock.Elapsed;
        await primary.StopAsync();
        var stopped = clock.Elapsed;
        await Task.Delay(Detection);
        await standby.PromoteAsync();
        var promoted = clock.Elapsed;
        output.WriteLine($"primary stopped {stopping.TotalSeconds:0.0}–{stopped.TotalSeconds:0.0} s, standby promoted at {promoted.TotalSeconds:0.0} s");

        // Each server must succeed again — on the promoted standby: the old primary is down — and then go on a while.
        await Eventually.WaitAsync(() => Task.FromResult(servers.Keys.All(s => answers.Any(a => a.Server == s && a.Status == 201 && a.Sent > stopped))),
            Continue, "a successful create through each server after the switch", () => Timeline(answers));
        await Task.Delay(TimeSpan.FromSeconds(3));
        await stop.CancelAsync();
        await load;
        output.WriteLine(Timeline(answers));
        foreach (var (server, process) in new[] { ("srv-a", stack.Process!), ("srv-b", replica.Process) })
        {
            // The servers' own errors and warnings, for a failure below to be explained.
            foreach (var line in process.Output.Where(l => l.Contains("\"LogLevel\":\"Error\",\"Category\":\"Limen.", StringComparison.Ordinal)).Take(20))
            {
                output.WriteLine($"{server}: {line}");
            }
        }

        // Clean failures only: an acknowledgement or a 503 problem naming the database, never a 500 or a hang.
        Assert.All(answers, a => Assert.True(a.Status == 201 || (a.Status == 503 && a.MediaType == "application/problem+json" && a.ProblemType == Problems.DatabaseUnavailable),
            $"{a.Server} answered {a.Name} with {a.Status} {a.ProblemType} {a.Error} after {a.Answered - a.Sent}"));
        foreach (var server in servers.Keys)
        {
            Assert.Contains(answers, a => a.Server == server && a.Status == 503);
            var back = answers.Where(a => a.Server == server && a.Status == 201 && a.Sent > stopped).MinBy(a => a.Answered)!;
            output.WriteLine($"{server}: first success {(back.Answered - stopping).TotalSeconds:0.0} s after the primary began to stop, " +
                $"{(back.Answered - promoted).TotalSeconds:0.0} s after the promotion");
            Assert.True(back.Answered - stopping < Continue, $"{server} succeeded again only {(back.Answered - stopping).TotalSeconds:0.0} s after the stop");

            // Health said so: the database down during the switch, connected again after it.
            var samples = health.Where(h => h.Server == server).ToList();
            Assert.Contains(samples, h => h.At > stopped && h.At < promoted && h.Status == 503 && h.Db == "disconnected");
            Assert.Contains(samples, h => h.At > back.Answered && h.Status == 200 && h.Db == "connected");
        }

        // Nobody leads while no primary holds the lock: the leader stepped down when its lock connection died.
        Assert.Contains(health, h => h.At < stopping && h.Leader);
        Assert.DoesNotContain(health, h => h.At > stopped + LeaderElection.CheckInterval && h.At < promoted && h.Leader);

        // Nothing acknowledged is lost: every 201's VM row and its audit row (by the request's id) are on the new primary.
        var acknowledged = answers.Where(a => a.Status == 201).ToList();
        Assert.Contains(acknowledged, a => a.Sent < stopping);
        var rows = (await stack.QueryAsync("SELECT id FROM vms", r => r.GetGuid(0))).ToHashSet();
        var audited = (await stack.QueryAsync("SELECT target_id, request_id FROM audit_logs WHERE action = 'vm.create' AND result = 'success'",
            r => (r.GetString(0), r.IsDBNull(1) ? null : r.GetString(1)))).ToHashSet();
        Assert.All(acknowledged, a =>
        {
            Assert.True(rows.Contains(a.VmId!.Value), $"VM {a.Name} ({a.VmId}), acknowledged by {a.Server} at {a.Answered.TotalSeconds:0.0} s, is gone");
            Assert.True(audited.Contains((a.VmId.ToString()!, a.RequestId)), $"the audit row of {a.Name} (request {a.RequestId}) is gone");
        });

        // The event stream, held open on srv-b across the switch, delivers again: its listener listens on the new primary.
        using var a = stack.Client(token);
        var after = (await VmTestKit.CreateVmAsync(a, image, "after-the-switch", memoryMb: 64)).GetProperty("id").GetGuid();
        var expected = acknowledged.Select(x => x.VmId!.Value).Append(after).ToHashSet();
        await Eventually.WaitAsync(async () =>
        {
            while (await stream.NextAsync(TimeSpan.FromMilliseconds(200)) is { } message)
            {
                if (message.Event == "vm.created")
                {
                    expected.Remove(message.Json.GetProperty("vm_id").GetGuid());
                }
            }

            return expected.Count == 0;
        }, TimeSpan.FromSeconds(20), "vm.created on srv-b's stream for every acknowledged VM", () => string.Join(", ", expected));
        Assert.False(stream.Ended);

        // A VM's lock (an advisory lock on the lock connections' own pool) is taken on the new primary:
        // a delete through each server of a VM acknowledged before the switch goes through.
        foreach (var (server, address) in servers)
        {
            var victim = acknowledged.First(x => x.Server == server && x.Sent < stopping);
            using var client = ApiClient.Create(address, token);
            var attempts = new List<int>();
            await Eventually.WaitAsync(async () =>
            {
                using var response = await client.DeleteAsync($"/api/vms/{victim.VmId}");
                attempts.Add((int)response.StatusCode);
                if (response.StatusCode == HttpStatusCode.ServiceUnavailable)
                {
                    await ProblemAssert.IsProblem(response, HttpStatusCode.ServiceUnavailable, Problems.DatabaseUnavailable);
                }

                return response.StatusCode == HttpStatusCode.NoContent;
            }, TimeSpan.FromSeconds(15), $"a delete through {server}", () => string.Join(", ", attempts));
            output.WriteLine($"{server}: delete of {victim.Name} answered {string.Join(", ", attempts)}");
        }

        // One leader again, whose loops run: the reconciler settles what the switch cut short (rows, domains and disks agree).
        await Eventually.WaitAsync(async () =>
        {
            var leaders = new List<bool>();
            foreach (var address in servers.Values)
            {
                using var client = ApiClient.Create(address);
                var body = JsonDocument.Parse(await client.GetStringAsync("/api/health")).RootElement;
                var leads = body.GetProperty("leader").GetBoolean();
                if (leads && body.GetProperty("loops").GetProperty("vm_reconciler").GetProperty("status").GetString() != "ok")
                {
                    return false;
                }

                leaders.Add(leads);
            }

            return leaders.Count(l => l) == 1;
        }, Continue, "exactly one leader with its reconciler ok");
        string? disagreement = null;
        await Eventually.WaitAsync(async () =>
        {
            try
            {
                await stack.AssertAgreementAsync("blank.qcow2");
                return true;
            }
            catch (Xunit.Sdk.XunitException e)
            {
                disagreement = e.Message;
                return false;
            }
        }, TimeSpan.FromSeconds(60), "rows, domains and disks to agree", () => disagreement!);
        Assert.False(stack.Process!.HasExited);
        Assert.False(replica.Process.HasExited);
    }

    /// <summary>
    /// A managed database or Patroni behind HAProxy: one endpoint (here a relay) that moves to the
    /// promoted standby. The connection string names one host; the same reconnection applies, and a
    /// write that lands on the not yet promoted standby (the endpoint moved early) is a 503 too.
    /// </summary>
    [Fact]
    public async Task Behind_one_endpoint_that_moves_to_the_promoted_standby_a_server_continues_and_a_write_on_the_standby_is_a_503()
    {
        await using var primary = await PrivatePostgres.StartAsync();
        await using var standby = await primary.StartStandbyAsync();
        await using var endpoint = new TcpRelay(primary.ConnectionString());
        var logs = new CollectingLoggerProvider();
        await using var server = await LimenTestServer.StartAsync(new Dictionary<string, string?> { ["ConnectionStrings:Limen"] = endpoint.ConnectionString },
            services => services.AddLogging(logging => logging.AddProvider(logs)), await TestDatabase.CreateAsync());
        var image = await VmTestKit.RegisterBlankImageAsync(server);
        var (_, token) = await server.CreateUserAsync("endpoint-owner");
        using var client = server.Client(token);
        client.Timeout = ClientTimeout;
        using var anonymous = server.Client();
        var acknowledged = new List<Guid> { (await VmTestKit.CreateVmAsync(client, image, "before", memoryMb: 64)).GetProperty("id").GetGuid() };

        await primary.StopAsync();
        var stopped = Stopwatch.StartNew();
        await CreateIsUnavailableAsync(client, image, "while-down");
        var health = await anonymous.GetAsync("/api/health");
        Assert.Equal((HttpStatusCode.ServiceUnavailable, "disconnected"), (health.StatusCode, (await ProblemAssert.Json(health)).GetProperty("db").GetString()));

        // The endpoint moves before the standby is promoted: reads would work there, every write is refused.
        endpoint.MoveTo(standby.Port);
        for (var i = 0; !logs.Lines.Any(l => l.Contains("read-only transaction", StringComparison.Ordinal)); i++)
        {
            Assert.True(i < 20, "no write reached the standby:\n" + string.Join('\n', logs.Lines.TakeLast(10)));
            await CreateIsUnavailableAsync(client, image, $"on-the-standby-{i}");
        }

        await standby.PromoteAsync();
        await Eventually.WaitAsync(async () =>
        {
            using var response = await client.PostAsJsonAsync("/api/vms", new { name = $"after-{Guid.NewGuid():N}", vcpus = 1, memory_mb = 64, disk_gb = 1, image_id = image });
            if (response.StatusCode != HttpStatusCode.Created)
            {
                await ProblemAssert.IsProblem(response, HttpStatusCode.ServiceUnavailable, Problems.DatabaseUnavailable);
                return false;
            }

            acknowledged.Add((await ProblemAssert.Json(response)).GetProperty("id").GetGuid());
            return true;
        }, Continue - stopped.Elapsed, "a create through the moved endpoint");
        output.WriteLine($"a create succeeded {stopped.Elapsed.TotalSeconds:0.0} s after the primary stopped");
        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/api/health")).StatusCode);

        await using var direct = new Npgsql.NpgsqlConnection(standby.ConnectionString());
        await direct.OpenAsync();
        foreach (var id in acknowledged)
        {
            await using var command = new Npgsql.NpgsqlCommand(
                "SELECT (SELECT count(*) FROM vms WHERE id = $1) + (SELECT count(*) FROM audit_logs WHERE action = 'vm.create' AND result = 'success' AND target_id = $1::text)",
                direct) { Parameters = { new() { Value = id } } };
            Assert.Equal(2L, await command.ExecuteScalarAsync());
        }
    }

    private static async Task CreateIsUnavailableAsync(HttpClient client, Guid image, string name) =>
        await ProblemAssert.IsProblem(await client.PostAsJsonAsync("/api/vms", new { name, vcpus = 1, memory_mb = 64, disk_gb = 1, image_id = image }),
            HttpStatusCode.ServiceUnavailable, Problems.DatabaseUnavailable);

    /// <summary>Creates VMs through one server one after another, keeping every answer and when it came.</summary>
    private static async Task CreateVmsAsync(string server, Uri address, string token, Guid image, Stopwatch clock, ConcurrentQueue<Answer> answers, CancellationToken stop)
    {
        using var client = ApiClient.Create(address, token);
        client.Timeout = ClientTimeout;
        for (var i = 0; !stop.IsCancellationRequested; i++)
        {
            var name = $"{server}-{i}";
            var sent = clock.Elapsed;
            try
            {
                using var response = await client.PostAsJsonAsync("/api/vms", new { name, vcpus = 1, memory_mb = 64, disk_gb = 1, image_id = image }, CancellationToken.None);
                var body = await response.Content.ReadAsStringAsync(CancellationToken.None);
                var media = response.Content.Headers.ContentType?.MediaType;
                var json = body.Length > 0 && media is "application/json" or "application/problem+json" ? JsonDocument.Parse(body).RootElement : (JsonElement?)null;
                answers.Enqueue(new Answer(server, name, sent, clock.Elapsed, (int)response.StatusCode, media,
                    media == "application/problem+json" ? json?.GetProperty("type").GetString() : null,
                    response.StatusCode == HttpStatusCode.Created ? json?.GetProperty("id").GetGuid() : null,
                    response.Headers.TryGetValues("X-Request-Id", out var ids) ? ids.Single() : null, null));
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                answers.Enqueue(new Answer(server, name, sent, clock.Elapsed, null, null, null, null, null, e.GetType().Name + ": " + e.Message));
            }

            await Task.Delay(100, CancellationToken.None);
        }
    }

    private static async Task PollHealthAsync(string server, Uri address, Stopwatch clock, ConcurrentQueue<HealthSample> samples, CancellationToken stop)
    {
        using var client = ApiClient.Create(address);
        client.Timeout = ClientTimeout;
        while (!stop.IsCancellationRequested)
        {
            var at = clock.Elapsed;
            using var response = await client.GetAsync("/api/health", CancellationToken.None);
            var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(CancellationToken.None)).RootElement;
            samples.Enqueue(new HealthSample(server, at, (int)response.StatusCode, body.GetProperty("db").GetString(), body.GetProperty("leader").GetBoolean()));
            await Task.Delay(250, CancellationToken.None);
        }
    }

    /// <summary>Room for every VM the test creates: the point is the switch, not the quota.</summary>
    private static async Task MakeRoomAsync(ServeStack stack, string token)
    {
        using var client = stack.Client(token);
        using var admin = stack.Client(await stack.AdminTokenAsync());
        var me = await ProblemAssert.Json(await client.GetAsync("/api/auth/me"));
        var roomy = new { max_vms = 1000, max_vcpus = 1000, max_memory_mb = 1_000_000, max_disk_gb = 1_000_000, max_snapshots = 1000 };
        foreach (var path in new[] { $"/api/admin/users/{me.GetProperty("id")}/quota", "/api/admin/quota" })
        {
            var quota = await admin.PutAsJsonAsync(path, roomy);
            Assert.True(quota.IsSuccessStatusCode, await quota.Content.ReadAsStringAsync());
        }
    }

    /// <summary>Per server, runs of equal answers: "srv-a 201×12 (0.1–3.2 s), 503 database-unavailable×4 (3.3–6.0 s), …".</summary>
    private static string Timeline(IEnumerable<Answer> answers) =>
        string.Join('\n', answers.GroupBy(a => a.Server).OrderBy(g => g.Key).Select(g =>
        {
            var runs = new List<(string What, int Count, TimeSpan From, TimeSpan To)>();
            foreach (var a in g.OrderBy(a => a.Sent))
            {
                var what = a.Status is { } status ? $"{status}{(a.ProblemType is null ? "" : " " + a.ProblemType.Split('/')[^1])}" : a.Error!;
                if (runs.Count > 0 && runs[^1].What == what)
                {
                    runs[^1] = runs[^1] with { Count = runs[^1].Count + 1, To = a.Answered };
                }
                else
                {
                    runs.Add((what, 1, a.Sent, a.Answered));
                }
            }

            return g.Key + " " + string.Join(", ", runs.Select(r => $"{r.What}×{r.Count} ({r.From.TotalSeconds:0.0}–{r.To.TotalSeconds:0.0} s)"));
        }));
}
