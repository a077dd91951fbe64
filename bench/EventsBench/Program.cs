// Event stream benchmark: two `limen serve` processes on one fresh database, N SSE clients on
// loopback split between them (all admins: every client receives every event, the widest fan-out),
// events inserted into `events` by SQL at a fixed rate (the INSERT EventOutlet makes; the triggers
// assign the id in commit order and NOTIFY). Latency is from just before the INSERT's autocommit
// is sent to the moment a client has parsed the event's `id:` line, on one clock (this process).
//
//   bench/events [--clients 500] [--rate 100] [--seconds 30] [--rounds 5] [--database-url URL] [--out bench/results/events.md]
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using Limen.Data;
using Npgsql;

var options = Options.Parse(args);
var loadBefore = File.ReadAllText("/proc/loadavg").Split(' ')[0];
var repo = Directory.GetCurrentDirectory();
var adminUrl = options.DatabaseUrl
    ?? Environment.GetEnvironmentVariable("DATABASE_URL")
    ?? File.ReadAllText(Path.Combine(repo, ".limen", "database-url")).Trim();
var server = new NpgsqlConnectionStringBuilder(DatabaseConnection.FromUrl(adminUrl));
var dbName = "limen_test_bench_events_" + Guid.NewGuid().ToString("N")[..8];
await using (var admin = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(server.ConnectionString) { Database = "postgres" }.ConnectionString))
{
    await admin.OpenAsync();
    await new NpgsqlCommand($"CREATE DATABASE {dbName}", admin).ExecuteNonQueryAsync();
}

var database = new NpgsqlConnectionStringBuilder(server.ConnectionString) { Database = dbName, Pooling = false }.ConnectionString;
var databaseUrl = $"postgres://{Uri.EscapeDataString(server.Username!)}:{Uri.EscapeDataString(server.Password!)}@{server.Host}:{server.Port}/{dbName}";
var servers = new List<Served>();
try
{
    // One after the other: the first migrates the fresh database.
    foreach (var name in new[] { "a", "b" })
    {
        servers.Add(await Served.StartAsync(name, databaseUrl));
    }

    var tokens = new List<string>();
    foreach (var s in servers)
    {
        tokens.Add(await s.LoginAsync());
    }

    await Task.Delay(2000);
    var rssBefore = servers.Select(s => s.RssKiB()).ToArray();

    Console.WriteLine($"servers {string.Join(", ", servers.Select(s => s.Url))}; connecting {options.Clients} clients");
    var clients = new List<Client>();
    for (var i = 0; i < options.Clients; i++)
    {
        clients.Add(new Client(servers[i % 2].Url, tokens[i % 2]));
    }

    foreach (var chunk in clients.Chunk(50))
    {
        await Task.WhenAll(chunk.Select(c => c.ConnectAsync()));
    }

    await Task.Delay(3000);
    var rssConnected = servers.Select(s => s.RssKiB()).ToArray();

    // The producer: one insert every 1/rate s on its schedule, alternating the server it names;
    // several rounds on the same servers and clients, a pause between them, each measured on its own.
    var total = options.Rate * options.Seconds;
    var committedAt = new long[options.Rounds, total];
    var where = new Dictionary<long, (int Round, int N)>(options.Rounds * total);
    await using (var producer = new NpgsqlConnection(database))
    {
        await producer.OpenAsync();
        await using var insert = new NpgsqlCommand(
            "INSERT INTO events (type, at, owner_id, vm_id, server_id, data) VALUES ('vm.state_changed', now(), NULL, $1, $2, $3::jsonb) RETURNING id", producer);
        insert.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Uuid });
        insert.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
        insert.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
        await insert.PrepareAsync();
        for (var round = 0; round < options.Rounds; round++)
        {
            if (round > 0)
            {
                await Task.Delay(2000);
            }

            var start = Stopwatch.GetTimestamp();
            for (var n = 0; n < total; n++)
            {
                var due = start + (long)(n * (double)Stopwatch.Frequency / options.Rate);
                var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), due);
                if (wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait);
                }

                var vm = Guid.NewGuid();
                insert.Parameters[0].Value = vm;
                insert.Parameters[1].Value = n % 2 == 0 ? "bench-a" : "bench-b";
                insert.Parameters[2].Value = $"{{\"vm_id\":\"{vm}\",\"from\":\"stopped\",\"to\":\"running\",\"reason\":\"bench\",\"at\":\"{DateTimeOffset.UtcNow:O}\"}}";
                committedAt[round, n] = Stopwatch.GetTimestamp();
                where[(long)(await insert.ExecuteScalarAsync())!] = (round, n);
            }

            Console.WriteLine($"round {round + 1}: inserted {total} events in {Stopwatch.GetElapsedTime(start).TotalSeconds:0.0} s");
        }
    }

    await Task.Delay(3000);
    var rssAfter = servers.Select(s => s.RssKiB()).ToArray();
    var latencies = Enumerable.Range(0, options.Rounds).Select(_ => new List<double>(total * options.Clients)).ToArray();
    long lost = 0, duplicates = 0, foreign = 0, cut = 0;
    foreach (var client in clients)
    {
        var seen = new HashSet<long>();
        foreach (var (id, at) in client.Received)
        {
            if (!where.TryGetValue(id, out var sent))
            {
                foreign++;
                continue;
            }

            if (!seen.Add(id))
            {
                duplicates++;
                continue;
            }

            latencies[sent.Round].Add(Stopwatch.GetElapsedTime(committedAt[sent.Round, sent.N], at).TotalMilliseconds);
        }

        lost += (long)options.Rounds * total - seen.Count;
        cut += client.Ended ? 1 : 0;
    }

    foreach (var round in latencies)
    {
        round.Sort();
    }

    static double P(List<double> sorted, double q) => sorted.Count == 0 ? double.NaN : sorted[Math.Min(sorted.Count - 1, (int)(q * sorted.Count))];
    static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    double MedianOf(double q) => Median(latencies.Select(round => P(round, q)));
    var perClient = Enumerable.Range(0, 2).Select(i => (rssConnected[i] - rssBefore[i]) / (double)(options.Clients / 2)).ToArray();
    var perClientAfter = Enumerable.Range(0, 2).Select(i => (rssAfter[i] - rssBefore[i]) / (double)(options.Clients / 2)).ToArray();
    var loadAfter = File.ReadAllText("/proc/loadavg").Split(' ')[0];
    var p99 = MedianOf(0.99);
    var verdict = p99 <= 100 && lost == 0 ? "met" : "NOT met";
    var rounds = string.Join("\n", latencies.Select((round, i) =>
        $"| {i + 1} | {round.Count:N0} | {P(round, 0.5):0.0} ms | {P(round, 0.9):0.0} ms | {P(round, 0.99):0.0} ms | {(round.Count == 0 ? double.NaN : round[^1]):0.0} ms |"));
    var report = $"""
        # Event stream benchmark

        Run {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC on {Environment.ProcessorCount} cores, .NET {Environment.Version}; 1-minute load average {loadBefore} → {loadAfter} (the bench's own {options.Clients} clients and producer share the cores with both servers and PostgreSQL).
        Two `limen serve` processes (Release, test:///default libvirt) on one fresh PostgreSQL database; {options.Clients} SSE clients on loopback, {options.Clients / 2} per server, all admins (every client receives every event); the clients and the producer share the bench process.
        Events: {options.Rounds} rounds of {total} `vm.state_changed` rows, {options.Rate}/s for {options.Seconds} s, 2 s apart, on the same servers and clients, inserted by SQL into `events` (the INSERT EventOutlet makes: the triggers assign ids in commit order and NOTIFY), alternately naming server a and b. Latency: from just before the autocommitted INSERT is sent to the client having parsed the event's `id:` line. Reproduce: `bench/events --rounds {options.Rounds}`.

        | measure (median of the rounds) | value |
        |---|---:|
        | deliveries | {latencies.Sum(round => (long)round.Count):N0} of {(long)options.Rounds * total * options.Clients:N0} |
        | latency p50 | {MedianOf(0.5):0.0} ms |
        | latency p90 | {MedianOf(0.9):0.0} ms |
        | latency p99 | {p99:0.0} ms |
        | latency max | {Median(latencies.Select(round => round.Count == 0 ? double.NaN : round[^1])):0.0} ms |
        | events lost | {lost} |
        | duplicates | {duplicates} |
        | streams that ended early | {cut} |
        | server RSS before clients | {rssBefore[0] / 1024.0:0} MiB / {rssBefore[1] / 1024.0:0} MiB |
        | memory per connected client (RSS delta / clients, idle) | {perClient[0]:0.0} KiB / {perClient[1]:0.0} KiB |
        | memory per client after the run (RSS delta / clients) | {perClientAfter[0]:0.0} KiB / {perClientAfter[1]:0.0} KiB |

        | round | deliveries | p50 | p90 | p99 | max |
        |---:|---:|---:|---:|---:|---:|
        {rounds}

        Goal (issue 11): p99 ≤ 100 ms with no event lost — {verdict}: median p99 {p99:0.0} ms is ×{p99 / 100:0.00} of the goal; {lost} lost.
        """;
    Console.WriteLine(report);
    Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(options.Out))!);
    await File.WriteAllTextAsync(options.Out, report + "\n");
    foreach (var client in clients)
    {
        client.Dispose();
    }
}
finally
{
    foreach (var s in servers)
    {
        s.Dispose();
    }

    NpgsqlConnection.ClearAllPools();
    await using var admin = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(server.ConnectionString) { Database = "postgres" }.ConnectionString);
    await admin.OpenAsync();
    await new NpgsqlCommand($"DROP DATABASE IF EXISTS {dbName} WITH (FORCE)", admin).ExecuteNonQueryAsync();
}

internal sealed record Options(int Clients, int Rate, int Seconds, int Rounds, string? DatabaseUrl, string Out)
{
    public static Options Parse(string[] args)
    {
        var values = new Dictionary<string, string>();
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            values[args[i].TrimStart('-')] = args[i + 1];
        }

        int Int(string name, int fallback) => values.TryGetValue(name, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
        return new Options(Int("clients", 500), Int("rate", 100), Int("seconds", 30), Int("rounds", 5), values.GetValueOrDefault("database-url"),
            values.GetValueOrDefault("out", Path.Combine("bench", "results", "events.md")));
    }
}

/// <summary>One `limen serve` child process on a free loopback port with its own state directory.</summary>
internal sealed class Served : IDisposable
{
    private const string Password = "bench-admin-password-0123456789";
    private readonly Process process;
    private readonly string stateDir;

    private Served(Process process, string stateDir, string url)
    {
        this.process = process;
        this.stateDir = stateDir;
        Url = url;
    }

    public string Url { get; }

    public static async Task<Served> StartAsync(string name, string databaseUrl)
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var stateDir = Directory.CreateTempSubdirectory("limen-bench-events-").FullName;
        // bench/events passes the published build run.sh starts.
        var dll = Environment.GetEnvironmentVariable("LIMEN_DLL")
            ?? throw new InvalidOperationException("LIMEN_DLL is not set: start the bench through bench/events");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(dll);
        start.ArgumentList.Add("serve");
        start.Environment["DATABASE_URL"] = databaseUrl;
        start.Environment["LIMEN_STATE_DIR"] = stateDir;
        start.Environment["LIMEN_ADMIN_PASSWORD"] = Password;
        start.Environment["LIMEN_URLS"] = $"http://127.0.0.1:{port}";
        start.Environment["Limen__Hypervisor__Uri"] = "test:///default";
        start.Environment["Limen__ServerId"] = "bench-" + name;
        start.Environment["Logging__LogLevel__Default"] = "Warning";
        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var served = new Served(process, stateDir, $"http://127.0.0.1:{port}");
        using var http = new HttpClient();
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (true)
        {
            try
            {
                if ((await http.GetAsync(served.Url + "/api/health/live")).IsSuccessStatusCode)
                {
                    return served;
                }
            }
            catch (HttpRequestException)
            {
            }

            if (DateTime.UtcNow > deadline || process.HasExited)
            {
                served.Dispose();
                throw new InvalidOperationException($"limen serve ({name}) did not come up");
            }

            await Task.Delay(250);
        }
    }

    public async Task<string> LoginAsync()
    {
        using var http = new HttpClient();
        var response = await http.PostAsJsonAsync(Url + "/api/auth/login", new { username = "admin", password = Password });
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("access_token").GetString()!;
    }

    /// <summary>Resident set size of the server process (VmRSS), KiB.</summary>
    public long RssKiB()
    {
        var line = File.ReadLines($"/proc/{process.Id}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
    }

    public void Dispose()
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
        }

        process.Dispose();
        Directory.Delete(stateDir, recursive: true);
    }
}

/// <summary>One SSE client: a connection of its own, reading `id:` lines and when they arrived.</summary>
internal sealed class Client(string url, string token) : IDisposable
{
    private readonly HttpClient http = new(new SocketsHttpHandler { MaxConnectionsPerServer = 1 }) { Timeout = Timeout.InfiniteTimeSpan };
    private readonly CancellationTokenSource stop = new();
    private Task reading = Task.CompletedTask;

    public List<(long Id, long At)> Received { get; } = new(4096);

    public bool Ended => reading.IsCompleted;

    public async Task ConnectAsync()
    {
        var request = new HttpRequestMessage(HttpMethod.Get, url + "/api/events");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        response.EnsureSuccessStatusCode();
        var body = await response.Content.ReadAsStreamAsync();
        reading = Task.Run(async () =>
        {
            using var lines = new StreamReader(body);
            try
            {
                while (await lines.ReadLineAsync(stop.Token) is { } line)
                {
                    if (line.StartsWith("id: ", StringComparison.Ordinal))
                    {
                        var at = Stopwatch.GetTimestamp();
                        Received.Add((long.Parse(line.AsSpan(4), CultureInfo.InvariantCulture), at));
                    }
                }
            }
            catch (Exception e) when (e is IOException or OperationCanceledException)
            {
            }
        });
    }

    public void Dispose()
    {
        stop.Cancel();
        http.Dispose();
    }
}
