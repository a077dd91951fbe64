// Console proxy benchmark: Limen's /vnc/{id} (the real server: Kestrel, tickets, session manager,
// relay) against websockify (Debian's), both relaying the same loopback TCP server, in one run and
// interleaved run by run so machine drift hits both alike. Measures server-to-browser throughput
// (the direction framebuffer updates take) and the round-trip latency each proxy adds to a direct
// TCP round trip, and the same with several sessions at once; also the CPU time each proxy process
// spends per GiB and per round trip. Prints medians and ratios and writes them as Markdown.
//
//   bench/console-proxy [--megabytes 256] [--runs 7] [--pings 2000] [--sessions 4] [--baseline DIR] [--out bench/results/console-proxy.md]
//
// --baseline DIR: also an earlier build of this bench (its bin/Release/net10.0), as "limen-before".
using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Xml.Linq;
using Limen.Features.Hosts;
using Limen.Features.Images;
using Limen.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

if (args is ["--serve-limen", var vncPortText])
{
    // The child process: Limen alone in its process, as websockify is in its own.
    await using var served = await LimenUnderTest.StartAsync(int.Parse(vncPortText, CultureInfo.InvariantCulture));
    Console.WriteLine(served.Handshake);
    await Console.In.ReadLineAsync();
    return;
}

var options = Options.Parse(args);
var payload = options.Megabytes * 1024L * 1024;
// Other work on the machine moves both proxies' numbers; the report says how busy it was.
var loadBefore = File.ReadAllText("/proc/loadavg").Split(' ')[0];

await using var target = new TargetServer();
await using var limen = await LimenProcess.StartAsync(typeof(LimenProcess).Assembly.Location, target.Port);
await using var baseline = options.Baseline is { } dir ? await LimenProcess.StartAsync(Path.Combine(dir, "ConsoleProxyBench.dll"), target.Port) : null;
await using var websockify = await Websockify.StartAsync(target.Port);

Console.WriteLine($"target 127.0.0.1:{target.Port}; limen {limen.Describe}; {(baseline is null ? "" : $"limen-before {baseline.Describe}; ")}websockify {websockify.Url}");
var proxies = new List<Proxy> { new("limen", limen.OpenAsync, limen.Pid, Jits: true) };
if (baseline is not null)
{
    proxies.Add(new("limen-before", baseline.OpenAsync, baseline.Pid, Jits: true));
}

proxies.Add(new("websockify", websockify.OpenAsync, websockify.Pid, Jits: false));

// Warm-up: JIT, connection pools, websockify's first fork; then let each Limen's background JIT
// finish what start-up and the warm-up gave it. A server relays consoles long after its start;
// measured during its tier-1 recompilation it would be measured against its own start-up.
foreach (var proxy in proxies)
{
    for (var i = 0; i < 3; i++)
    {
        await Measure.ThroughputAsync(proxy.Open, 32L * 1024 * 1024);
        await Measure.RoundTripsAsync(proxy.Open, 500);
        await Measure.ConcurrentAsync(proxy.Open, options.Sessions, 32L * 1024 * 1024);
    }
}

foreach (var proxy in proxies.Where(p => p.Jits))
{
    var waited = await JitQuiet.WaitAsync(proxy.Pid, TimeSpan.FromSeconds(120));
    Console.WriteLine($"{proxy.Name}: background JIT quiet after {waited.TotalSeconds:F1} s");
}

var results = proxies.ToDictionary(p => p.Name, _ => new ProxyResult());
var direct = new List<double>();
for (var run = 0; run < options.Runs; run++)
{
    // Every run in another order, so neither proxy always goes first after the direct baseline.
    var order = Enumerable.Range(0, proxies.Count).Select(i => proxies[(i + run) % proxies.Count]).ToList();
    direct.Add(Measure.Median(await Measure.DirectRoundTripsAsync(target.Port, options.Pings)));
    foreach (var proxy in order)
    {
        var result = results[proxy.Name];
        var cpu = new CpuMeter(proxy.Pid);
        result.Throughput.Add(await Measure.ThroughputAsync(proxy.Open, payload, cpu));
        result.CpuPerGib.Add(cpu.Seconds * 1024 / options.Megabytes);
        cpu = new CpuMeter(proxy.Pid);
        var rtts = await Measure.RoundTripsAsync(proxy.Open, options.Pings, cpu);
        result.CpuPerRoundTrip.Add(cpu.Seconds * 1e6 / options.Pings);
        result.RoundTrip.Add(Measure.Median(rtts));
        result.AllRoundTrips.AddRange(rtts);
        result.Added.Add(Measure.Median(rtts) - direct[^1]);
        var (aggregate, loaded) = await Measure.ConcurrentAsync(proxy.Open, options.Sessions, payload);
        result.Concurrent.Add(aggregate);
        result.LoadedRoundTrip.Add(Measure.Median(loaded));
        Console.WriteLine($"run {run + 1}: {proxy.Name,-12} {result.Throughput[^1],7:F1} MiB/s ({result.CpuPerGib[^1]:F2} CPU s/GiB), RTT {result.RoundTrip[^1],6:F1} µs (direct {direct[^1]:F1}; {result.CpuPerRoundTrip[^1]:F0} CPU µs each), "
            + $"{options.Sessions} sessions {aggregate,7:F1} MiB/s, RTT under load {result.LoadedRoundTrip[^1],7:F1} µs ({loaded.Count} pings)");
    }
}

var report = Report.Build(options, results, direct, $"{loadBefore} → {File.ReadAllText("/proc/loadavg").Split(' ')[0]}");
Console.WriteLine();
Console.WriteLine(report);
Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(options.Out))!);
await File.WriteAllTextAsync(options.Out, report);
Console.WriteLine($"written to {options.Out}");

/// <param name="Pid">The proxy's process (websockify's forks a child per connection, counted with it).</param>
/// <param name="Jits">A .NET process, whose background JIT the measurement waits out.</param>
internal sealed record Proxy(string Name, Func<Task<WebSocket>> Open, int Pid, bool Jits);

/// <summary>One proxy's figures, one entry per run (round-trip times: each run's median).</summary>
internal sealed class ProxyResult
{
    public List<double> Throughput { get; } = [];
    public List<double> CpuPerGib { get; } = [];
    public List<double> CpuPerRoundTrip { get; } = [];
    public List<double> RoundTrip { get; } = [];
    public List<double> AllRoundTrips { get; } = [];
    public List<double> Added { get; } = [];
    public List<double> Concurrent { get; } = [];
    public List<double> LoadedRoundTrip { get; } = [];
}

internal sealed record Options(int Megabytes, int Runs, int Pings, int Sessions, string? Baseline, string Out)
{
    public static Options Parse(string[] args)
    {
        var values = new Dictionary<string, string>();
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            values[args[i].TrimStart('-')] = args[i + 1];
        }

        int Int(string name, int fallback) => values.TryGetValue(name, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
        return new Options(Int("megabytes", 256), Int("runs", 7), Int("pings", 2000), Int("sessions", 4), values.GetValueOrDefault("baseline"),
            values.GetValueOrDefault("out", Path.Combine("bench", "results", "console-proxy.md")));
    }
}

/// <summary>
/// CPU time a process and its children used (the proxy's cost, which on a busy machine tells more
/// than its wall-clock throughput): utime + stime + the reaped children's, plus the live children's.
/// </summary>
internal static class ProcessCpu
{
    // Ticks of /proc/…/stat (USER_HZ, 100 on Linux).
    public static double Seconds(int pid)
    {
        long ticks = 0;
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var candidate))
            {
                continue;
            }

            try
            {
                var fields = Fields(File.ReadAllText(Path.Combine(dir, "stat")));
                var parent = int.Parse(fields[1], CultureInfo.InvariantCulture);
                if (candidate == pid || parent == pid)
                {
                    ticks += long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
                }

                if (candidate == pid)
                {
                    ticks += long.Parse(fields[13], CultureInfo.InvariantCulture) + long.Parse(fields[14], CultureInfo.InvariantCulture);
                }
            }
            catch (IOException)
            {
                // The process exited between listing and reading.
            }
        }

        return ticks / 100.0;
    }

    /// <summary>/proc/…/stat's fields after the command name (which may hold spaces): state, ppid, …</summary>
    public static string[] Fields(string stat) => stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
}

/// <summary>The proxy process's CPU time between Start and Stop: the relaying alone, not the session's set-up.</summary>
internal sealed class CpuMeter(int pid)
{
    private double started;

    public double Seconds { get; private set; }

    public void Start() => started = ProcessCpu.Seconds(pid);

    public void Stop() => Seconds = ProcessCpu.Seconds(pid) - started;
}

/// <summary>
/// Waits until a process's tiered-compilation thread has used no CPU for two seconds in a row (or
/// has exited, which it does when idle), reading its CPU time from /proc.
/// </summary>
internal static class JitQuiet
{
    public static async Task<TimeSpan> WaitAsync(int pid, TimeSpan atMost)
    {
        var clock = Stopwatch.StartNew();
        var previous = JitTicks(pid);
        var quietFor = 0;
        while (quietFor < 4 && clock.Elapsed < atMost)
        {
            await Task.Delay(500);
            var now = JitTicks(pid);
            var busy = now.Any(t => !previous.TryGetValue(t.Key, out var before) || t.Value > before);
            quietFor = busy ? 0 : quietFor + 1;
            previous = now;
        }

        return clock.Elapsed;
    }

    /// <summary>utime + stime (clock ticks) of each of the process's threads named ".NET Tiered Com…".</summary>
    private static Dictionary<string, long> JitTicks(int pid)
    {
        var ticks = new Dictionary<string, long>();
        foreach (var task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
        {
            try
            {
                var stat = File.ReadAllText(Path.Combine(task, "stat"));
                var name = stat[(stat.IndexOf('(', StringComparison.Ordinal) + 1)..stat.LastIndexOf(')')];
                if (name.StartsWith(".NET Tiered", StringComparison.Ordinal))
                {
                    var fields = ProcessCpu.Fields(stat);
                    ticks[task] = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
                }
            }
            catch (IOException)
            {
                // The thread exited between listing and reading.
            }
        }

        return ticks;
    }
}

/// <summary>
/// The relayed server, on loopback. The client's first byte picks the mode: 'E' echoes everything
/// back; 'F' plus an 8-byte big-endian count sends that many bytes as fast as the socket takes them.
/// </summary>
internal sealed class TargetServer : IAsyncDisposable
{
    private readonly TcpListener listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource stop = new();
    private readonly Task accepting;

    public TargetServer()
    {
        listener.Start();
        accepting = AcceptAsync();
    }

    public int Port => ((IPEndPoint)listener.LocalEndpoint).Port;

    private async Task AcceptAsync()
    {
        while (!stop.IsCancellationRequested)
        {
            try
            {
                var client = await listener.AcceptTcpClientAsync(stop.Token);
                client.NoDelay = true;
                _ = ServeAsync(client);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        using (client)
        {
            try
            {
                var stream = client.GetStream();
                var mode = new byte[1];
                await stream.ReadExactlyAsync(mode, stop.Token);
                if (mode[0] == (byte)'F')
                {
                    var length = new byte[8];
                    await stream.ReadExactlyAsync(length, stop.Token);
                    var chunk = new byte[64 * 1024];
                    Random.Shared.NextBytes(chunk);
                    for (var left = BinaryPrimitives.ReadInt64BigEndian(length); left > 0; left -= chunk.Length)
                    {
                        await stream.WriteAsync(chunk.AsMemory(0, (int)Math.Min(left, chunk.Length)), stop.Token);
                    }
                }

                var buffer = new byte[64 * 1024];
                int read;
                while ((read = await stream.ReadAsync(buffer, stop.Token)) > 0)
                {
                    await stream.WriteAsync(buffer.AsMemory(0, read), stop.Token);
                }
            }
            catch (Exception e) when (e is IOException or OperationCanceledException or EndOfStreamException or SocketException)
            {
                // The benchmark client closed; nothing to report.
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await stop.CancelAsync();
        listener.Stop();
        await accepting;
        stop.Dispose();
    }
}

/// <summary>
/// `limen serve` as production builds it (LimenServer.Build), on a throw-away database, with one VM
/// on libvirt's test driver whose domain XML points its VNC display at the target server.
/// </summary>
internal sealed class LimenUnderTest : IAsyncDisposable
{
    private readonly WebApplication app;
    private readonly string database;
    private readonly string stateDir;
    private readonly HttpClient api;
    private readonly Guid vmId;

    private LimenUnderTest(WebApplication app, string database, string stateDir, HttpClient api, Guid vmId)
    {
        this.app = app;
        this.database = database;
        this.stateDir = stateDir;
        this.api = api;
        this.vmId = vmId;
    }

    public static async Task<LimenUnderTest> StartAsync(int vncPort)
    {
        // The limen_test_ prefix lets ./test.sh sweep it if this run is killed.
        var database = "limen_test_bench_" + Guid.NewGuid().ToString("N")[..8];
        await Admin(async c => await new NpgsqlCommand($"CREATE DATABASE {database}", c).ExecuteNonQueryAsync());
        var stateDir = Directory.CreateTempSubdirectory("limen-test-bench-").FullName;
        var password = "bench-" + Guid.NewGuid().ToString("N");
        var app = LimenServer.Build(new Dictionary<string, string?>
        {
            ["urls"] = "http://127.0.0.1:0",
            ["ConnectionStrings:Limen"] = ConnectionString(database),
            ["Limen:StateDir"] = stateDir,
            ["Limen:AdminPassword"] = password,
            ["Limen:Hypervisor:Uri"] = "test:///default",
            ["Limen:Hypervisor:DomainPrefix"] = "limen-test-",
            // Each measured connection is a session; the previous one may still be closing.
            ["Limen:Console:MaxSessionsPerUser"] = "1000",
            ["Logging:LogLevel:Default"] = "Warning",
            ["Logging:LogLevel:Microsoft.EntityFrameworkCore"] = "None",
        });
        await LimenStartup.PrepareAsync(app.Services, CancellationToken.None);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
        var api = new HttpClient { BaseAddress = new Uri(address + "/") };
        var login = await api.PostAsJsonAsync("api/auth/login", new { username = "admin", password });
        login.EnsureSuccessStatusCode();
        api.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer",
            (await login.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("access_token").GetString());

        var images = app.Services.GetRequiredService<ImageStore>();
        var qemuImg = Process.Start("qemu-img", ["create", "-q", "-f", "qcow2", Path.Combine(images.Directory, "bench.qcow2"), "64M"]);
        await qemuImg.WaitForExitAsync();
        var image = await Json(await api.PostAsJsonAsync("api/admin/images", new { name = "bench", file_name = "bench.qcow2", kind = "disk" }));
        var vm = await Json(await api.PostAsJsonAsync("api/vms", new
        {
            name = "bench", vcpus = 1, memory_mb = 128, disk_gb = 1, image_id = image.GetProperty("id").GetGuid(), start = false,
        }));
        var vmId = vm.GetProperty("id").GetGuid();
        app.Services.GetRequiredService<HostRegistry>().Local.Hypervisor.Run(c =>
        {
            XDocument xml;
            using (var domain = c.LookupDomainByUuid(vmId)!)
            {
                xml = XDocument.Parse(domain.GetXmlDesc());
            }

            var graphics = xml.Descendants("graphics").Single();
            graphics.SetAttributeValue("port", vncPort);
            graphics.SetAttributeValue("autoport", "no");
            graphics.SetAttributeValue("listen", "127.0.0.1");
            c.DefineDomain(xml.ToString()).Dispose();
        });
        (await api.PostAsync($"api/vms/{vmId}/actions/start", null)).EnsureSuccessStatusCode();
        return new LimenUnderTest(app, database, stateDir, api, vmId);
    }

    /// <summary>What the parent needs to ask for tickets: base address, access token, VM id.</summary>
    public string Handshake => $"READY {api.BaseAddress} {api.DefaultRequestHeaders.Authorization!.Parameter} {vmId}";

    public async ValueTask DisposeAsync()
    {
        api.Dispose();
        await app.StopAsync();
        await app.DisposeAsync();
        NpgsqlConnection.ClearAllPools();
        await Admin(async c => await new NpgsqlCommand($"DROP DATABASE IF EXISTS {database} WITH (FORCE)", c).ExecuteNonQueryAsync());
        Directory.Delete(stateDir, recursive: true);
    }

    private static async Task<JsonElement> Json(HttpResponseMessage response)
    {
        var body = await response.Content.ReadAsStringAsync();
        return response.IsSuccessStatusCode ? JsonDocument.Parse(body).RootElement : throw new InvalidOperationException($"{(int)response.StatusCode}: {body}");
    }

    /// <summary>The PostgreSQL that ./run.sh and ./test.sh start (.limen/database-url), or LIMEN_TEST_DATABASE_URL.</summary>
    private static string ConnectionString(string database)
    {
        var url = Environment.GetEnvironmentVariable("LIMEN_TEST_DATABASE_URL");
        if (string.IsNullOrEmpty(url))
        {
            url = File.ReadAllText(Path.Combine(".limen", "database-url")).Trim();
        }

        return new NpgsqlConnectionStringBuilder(Limen.Data.DatabaseConnection.FromUrl(url)) { Database = database }.ConnectionString;
    }

    private static async Task Admin(Func<NpgsqlConnection, Task> action)
    {
        await using var connection = new NpgsqlConnection(ConnectionString("postgres"));
        await connection.OpenAsync();
        await action(connection);
    }
}

/// <summary>
/// A bench binary as `--serve-limen`: Limen in a process of its own. Usually this one; with
/// --baseline also an earlier build's, to measure before and after in the same run.
/// </summary>
internal sealed class LimenProcess : IAsyncDisposable
{
    private readonly Process process;
    private readonly HttpClient api;
    private readonly Guid vmId;

    private LimenProcess(Process process, HttpClient api, Guid vmId)
    {
        this.process = process;
        this.api = api;
        this.vmId = vmId;
    }

    public string Describe => $"{api.BaseAddress}vnc/{vmId} (pid {process.Id})";

    public int Pid => process.Id;

    public static async Task<LimenProcess> StartAsync(string benchDll, int vncPort)
    {
        var start = new ProcessStartInfo(Environment.ProcessPath!, [benchDll, "--serve-limen", vncPort.ToString(CultureInfo.InvariantCulture)])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
        };
        // As the limen executable runs (Microsoft.NET.Sdk.Web turns Server GC on).
        start.Environment["DOTNET_gcServer"] = "1";
        var process = Process.Start(start)!;
        string? line;
        while ((line = await process.StandardOutput.ReadLineAsync()) is not null && !line.StartsWith("READY ", StringComparison.Ordinal))
        {
        }

        var parts = line?.Split(' ') ?? throw new InvalidOperationException("the Limen process exited before it was ready");
        var api = new HttpClient { BaseAddress = new Uri(parts[1]) };
        api.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", parts[2]);
        return new LimenProcess(process, api, Guid.Parse(parts[3]));
    }

    /// <summary>A fresh ticket (not timed), then the WebSocket as noVNC opens it.</summary>
    public async Task<WebSocket> OpenAsync()
    {
        var response = await api.PostAsync($"api/vms/{vmId}/console", null);
        var ticket = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        var socket = new ClientWebSocket();
        socket.Options.AddSubProtocol("binary");
        await socket.ConnectAsync(new Uri(ticket.GetProperty("ws_url").GetString()!), CancellationToken.None);
        return socket;
    }

    public async ValueTask DisposeAsync()
    {
        api.Dispose();
        process.StandardInput.Close();
        await process.WaitForExitAsync();
        process.Dispose();
    }
}

/// <summary>Debian's websockify (python3) relaying to the same target.</summary>
internal sealed class Websockify : IAsyncDisposable
{
    private readonly Process process;

    private Websockify(Process process, Uri url)
    {
        this.process = process;
        Url = url;
    }

    public Uri Url { get; }

    public int Pid => process.Id;

    public static async Task<Websockify> StartAsync(int targetPort)
    {
        var port = FreePort();
        var start = new ProcessStartInfo("websockify", [$"127.0.0.1:{port}", $"127.0.0.1:{targetPort}"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        var process = Process.Start(start) ?? throw new InvalidOperationException("websockify did not start (apt-get install websockify)");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        for (var i = 0; i < 100; i++)
        {
            try
            {
                using var probe = new TcpClient();
                await probe.ConnectAsync(IPAddress.Loopback, port);
                return new Websockify(process, new Uri($"ws://127.0.0.1:{port}/"));
            }
            catch (SocketException)
            {
                await Task.Delay(100);
            }
        }

        throw new InvalidOperationException("websockify did not listen");
    }

    public async Task<WebSocket> OpenAsync()
    {
        var socket = new ClientWebSocket();
        socket.Options.AddSubProtocol("binary");
        await socket.ConnectAsync(Url, CancellationToken.None);
        return socket;
    }

    public async ValueTask DisposeAsync()
    {
        process.Kill(entireProcessTree: true);
        await process.WaitForExitAsync();
        process.Dispose();
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

internal static class Measure
{
    private const int PingBytes = 16;

    /// <summary>MiB/s of <paramref name="bytes"/> flowing from the target through the proxy to the client.</summary>
    public static async Task<double> ThroughputAsync(Func<Task<WebSocket>> open, long bytes, CpuMeter? cpu = null)
    {
        using var socket = await open();
        cpu?.Start();
        var clock = Stopwatch.StartNew();
        await FloodAsync(socket, bytes);
        var seconds = clock.Elapsed.TotalSeconds;
        cpu?.Stop();
        await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
        return bytes / 1024.0 / 1024.0 / seconds;
    }

    /// <summary>
    /// <paramref name="sessions"/> sessions at once, each relaying its share of <paramref name="bytes"/>:
    /// their aggregate MiB/s, and the round-trip times of small messages on one more session meanwhile.
    /// </summary>
    public static async Task<(double MibPerSecond, List<double> RoundTrips)> ConcurrentAsync(Func<Task<WebSocket>> open, int sessions, long bytes)
    {
        var floods = new List<WebSocket>();
        for (var i = 0; i < sessions; i++)
        {
            floods.Add(await open());
        }

        using var echo = await open();
        await echo.SendAsync(new[] { (byte)'E' }, WebSocketMessageType.Binary, true, CancellationToken.None);
        var clock = Stopwatch.StartNew();
        var flowing = Task.WhenAll(floods.Select(f => FloodAsync(f, bytes / sessions)));
        var times = new List<double>();
        while (!flowing.IsCompleted)
        {
            times.Add(await RoundTripAsync(echo));
        }

        await flowing;
        var seconds = clock.Elapsed.TotalSeconds;
        foreach (var socket in floods.Append(echo))
        {
            await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
            socket.Dispose();
        }

        return (bytes / sessions * sessions / 1024.0 / 1024.0 / seconds, times);
    }

    /// <summary>Round-trip times in microseconds of small messages echoed through the proxy.</summary>
    public static async Task<List<double>> RoundTripsAsync(Func<Task<WebSocket>> open, int count, CpuMeter? cpu = null)
    {
        using var socket = await open();
        await socket.SendAsync(new[] { (byte)'E' }, WebSocketMessageType.Binary, true, CancellationToken.None);
        var times = new List<double>(count);
        cpu?.Start();
        for (var i = 0; i < count; i++)
        {
            times.Add(await RoundTripAsync(socket));
        }

        cpu?.Stop();

        await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
        return times;
    }

    /// <summary>The same round trips straight to the target over TCP: the baseline both proxies add to.</summary>
    public static async Task<List<double>> DirectRoundTripsAsync(int port, int count)
    {
        using var client = new TcpClient { NoDelay = true };
        await client.ConnectAsync(IPAddress.Loopback, port);
        var stream = client.GetStream();
        await stream.WriteAsync(new[] { (byte)'E' });
        var ping = new byte[PingBytes];
        var times = new List<double>(count);
        for (var i = 0; i < count; i++)
        {
            var clock = Stopwatch.StartNew();
            await stream.WriteAsync(ping);
            await stream.ReadExactlyAsync(ping);
            times.Add(clock.Elapsed.TotalMicroseconds);
        }

        return times;
    }

    public static double Median(List<double> values) => Percentile(values, 0.5);

    public static double Percentile(List<double> values, double p)
    {
        var sorted = values.Order().ToList();
        return sorted[Math.Min(sorted.Count - 1, (int)Math.Floor(p * sorted.Count))];
    }

    /// <summary>Asks the target for <paramref name="bytes"/> and reads them all.</summary>
    private static async Task FloodAsync(WebSocket socket, long bytes)
    {
        var request = new byte[9];
        request[0] = (byte)'F';
        BinaryPrimitives.WriteInt64BigEndian(request.AsSpan(1), bytes);
        var buffer = new byte[64 * 1024];
        await socket.SendAsync(request, WebSocketMessageType.Binary, true, CancellationToken.None);
        for (long received = 0; received < bytes;)
        {
            received += (await socket.ReceiveAsync(buffer.AsMemory(), CancellationToken.None)).Count;
        }
    }

    private static async Task<double> RoundTripAsync(WebSocket socket)
    {
        var ping = new byte[PingBytes];
        var clock = Stopwatch.StartNew();
        await socket.SendAsync(ping, WebSocketMessageType.Binary, true, CancellationToken.None);
        for (var got = 0; got < PingBytes;)
        {
            got += (await socket.ReceiveAsync(ping.AsMemory(got), CancellationToken.None)).Count;
        }

        return clock.Elapsed.TotalMicroseconds;
    }
}

internal static class Report
{
    public static string Build(Options options, Dictionary<string, ProxyResult> results, List<double> direct, string load)
    {
        var i = CultureInfo.InvariantCulture;
        var text = new StringBuilder();
        string Runs(List<double> values) => string.Join(", ", values.Select(v => v.ToString("F0", i)));
        text.AppendLine(i, $"# Console proxy benchmark");
        text.AppendLine();
        text.AppendLine(i, $"Run {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC on {Environment.ProcessorCount} cores ({System.Runtime.InteropServices.RuntimeInformation.OSDescription}), .NET {Environment.Version}; 1-minute load average {load}.");
        text.AppendLine(i, $"The proxies relay the same loopback TCP server in the same run, in a rotating order run by run, each in its own process (Limen as `limen serve` builds it, Server GC, measured once its background JIT is quiet; Debian's websockify 0.10); the client and the target server share the bench process. Reproduce: `bench/console-proxy --runs {options.Runs}{(options.Baseline is null ? "" : " --baseline DIR")}`.");
        text.AppendLine(i, $"Per run: {options.Megabytes} MiB from the server to one WebSocket client; {options.Pings} round trips of 16-byte messages (\"added\" = that run's median minus the median of the same round trip over direct TCP just before, median {Measure.Median(direct).ToString("F1", i)} µs); {options.Sessions} sessions at once relaying {options.Megabytes} MiB between them (aggregate), while one more session measures round trips. Every figure is the median over {options.Runs} runs.");
        text.AppendLine();
        text.AppendLine(i, $"| proxy | throughput MiB/s | CPU s per GiB | RTT µs | RTT p99 µs | added latency µs | CPU µs per round trip | {options.Sessions} sessions MiB/s | RTT under load µs |");
        text.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var (name, r) in results)
        {
            text.AppendLine(i, $"| {name} | {Measure.Median(r.Throughput):F1} | {Measure.Median(r.CpuPerGib):F2} | {Measure.Median(r.RoundTrip):F1} | {Measure.Percentile(r.AllRoundTrips, 0.99):F1} | {Measure.Median(r.Added):F1} | {Measure.Median(r.CpuPerRoundTrip):F1} | {Measure.Median(r.Concurrent):F1} | {Measure.Median(r.LoadedRoundTrip):F1} |");
        }

        text.AppendLine();
        foreach (var (name, r) in results)
        {
            text.AppendLine(i, $"- {name} per run: throughput {Runs(r.Throughput)} MiB/s; CPU per GiB {string.Join(", ", r.CpuPerGib.Select(v => v.ToString("F2", i)))} s; added latency {Runs(r.Added)} µs; {options.Sessions} sessions {Runs(r.Concurrent)} MiB/s.");
        }

        var w = results["websockify"];
        text.AppendLine();
        foreach (var (name, r) in results.Where(r => r.Key != "websockify"))
        {
            var throughput = Measure.Median(r.Throughput) / Measure.Median(w.Throughput);
            var added = Measure.Median(r.Added) / Measure.Median(w.Added);
            var concurrent = Measure.Median(r.Concurrent) / Measure.Median(w.Concurrent);
            var loaded = Measure.Median(r.LoadedRoundTrip) / Measure.Median(w.LoadedRoundTrip);
            text.AppendLine(i, $"{name} / websockify: throughput ×{throughput:F2}, added latency ×{added:F2}, {options.Sessions} sessions ×{concurrent:F2}, RTT under load ×{loaded:F2} (latency: lower is better).");
            if (name == "limen")
            {
                text.AppendLine(i, $"Targets (issue 14): throughput ≥ websockify's — {(throughput >= 1 ? "met" : "NOT met")}; added latency ≤ websockify's — {(added <= 1 ? "met" : "NOT met")}; {options.Sessions} sessions ≥ websockify's — {(concurrent >= 1 ? "met" : "NOT met")}.");
            }
        }

        return text.ToString();
    }
}
