// Console proxy benchmark: Limen's /vnc/{id} (the real server: Kestrel, tickets, session manager,
// relay) against websockify (Debian's), both relaying the same loopback TCP server, in one run and
// interleaved run by run so machine drift hits both alike. Measures server-to-browser throughput
// (the direction framebuffer updates take) and the round-trip latency each proxy adds to a direct
// TCP round trip. Prints medians and ratios and writes them as Markdown.
//
//   bench/console-proxy [--megabytes 256] [--runs 7] [--pings 2000] [--out bench/results/console-proxy.md]
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
await using var limen = await LimenProcess.StartAsync(target.Port);
await using var websockify = await Websockify.StartAsync(target.Port);

Console.WriteLine($"target 127.0.0.1:{target.Port}; limen {limen.Describe}; websockify {websockify.Url}");
Func<Task<WebSocket>>[] proxies = [limen.OpenAsync, websockify.OpenAsync];
string[] names = ["limen", "websockify"];

// Warm-up: JIT, connection pools, websockify's first fork.
foreach (var open in proxies)
{
    await Measure.ThroughputAsync(open, 16L * 1024 * 1024);
    await Measure.RoundTripsAsync(open, 200);
}

var throughput = names.ToDictionary(n => n, _ => new List<double>());
for (var run = 0; run < options.Runs; run++)
{
    for (var p = 0; p < proxies.Length; p++)
    {
        var mbps = await Measure.ThroughputAsync(proxies[p], payload);
        throughput[names[p]].Add(mbps);
        Console.WriteLine($"run {run + 1}: {names[p],-10} {mbps,8:F1} MiB/s");
    }
}

var direct = await Measure.DirectRoundTripsAsync(target.Port, options.Pings);
var latency = new Dictionary<string, List<double>>();
for (var p = 0; p < proxies.Length; p++)
{
    latency[names[p]] = await Measure.RoundTripsAsync(proxies[p], options.Pings);
}

var report = Report.Build(options, throughput, direct, latency, $"{loadBefore} → {File.ReadAllText("/proc/loadavg").Split(' ')[0]}");
Console.WriteLine();
Console.WriteLine(report);
Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(options.Out))!);
await File.WriteAllTextAsync(options.Out, report);
Console.WriteLine($"written to {options.Out}");

internal sealed record Options(int Megabytes, int Runs, int Pings, string Out)
{
    public static Options Parse(string[] args)
    {
        var values = new Dictionary<string, string>();
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            values[args[i].TrimStart('-')] = args[i + 1];
        }

        int Int(string name, int fallback) => values.TryGetValue(name, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
        return new Options(Int("megabytes", 256), Int("runs", 7), Int("pings", 2000),
            values.GetValueOrDefault("out", Path.Combine("bench", "results", "console-proxy.md")));
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

/// <summary>The bench binary again, as `--serve-limen`: Limen in a process of its own.</summary>
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

    public static async Task<LimenProcess> StartAsync(int vncPort)
    {
        var start = new ProcessStartInfo(Environment.ProcessPath!, [typeof(LimenProcess).Assembly.Location, "--serve-limen", vncPort.ToString(CultureInfo.InvariantCulture)])
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
    public static async Task<double> ThroughputAsync(Func<Task<WebSocket>> open, long bytes)
    {
        using var socket = await open();
        var request = new byte[9];
        request[0] = (byte)'F';
        BinaryPrimitives.WriteInt64BigEndian(request.AsSpan(1), bytes);
        var buffer = new byte[64 * 1024];
        var clock = Stopwatch.StartNew();
        await socket.SendAsync(request, WebSocketMessageType.Binary, true, CancellationToken.None);
        for (long received = 0; received < bytes;)
        {
            received += (await socket.ReceiveAsync(buffer.AsMemory(), CancellationToken.None)).Count;
        }

        var seconds = clock.Elapsed.TotalSeconds;
        await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
        return bytes / 1024.0 / 1024.0 / seconds;
    }

    /// <summary>Round-trip times in microseconds of small messages echoed through the proxy.</summary>
    public static async Task<List<double>> RoundTripsAsync(Func<Task<WebSocket>> open, int count)
    {
        using var socket = await open();
        await socket.SendAsync(new[] { (byte)'E' }, WebSocketMessageType.Binary, true, CancellationToken.None);
        var ping = new byte[PingBytes];
        var buffer = new byte[PingBytes];
        var times = new List<double>(count);
        for (var i = 0; i < count; i++)
        {
            var clock = Stopwatch.StartNew();
            await socket.SendAsync(ping, WebSocketMessageType.Binary, true, CancellationToken.None);
            for (var got = 0; got < PingBytes;)
            {
                got += (await socket.ReceiveAsync(buffer.AsMemory(got), CancellationToken.None)).Count;
            }

            times.Add(clock.Elapsed.TotalMicroseconds);
        }

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
}

internal static class Report
{
    public static string Build(Options options, Dictionary<string, List<double>> throughput, List<double> direct, Dictionary<string, List<double>> latency, string load)
    {
        var i = CultureInfo.InvariantCulture;
        var directMedian = Median(direct);
        var added = latency.ToDictionary(l => l.Key, l => Median(l.Value) - directMedian);
        var text = new StringBuilder();
        text.AppendLine(i, $"# Console proxy benchmark");
        text.AppendLine();
        text.AppendLine(i, $"Run {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC on {Environment.ProcessorCount} cores ({System.Runtime.InteropServices.RuntimeInformation.OSDescription}), .NET {Environment.Version}; 1-minute load average {load}.");
        text.AppendLine(i, $"Both proxies relay the same loopback TCP server in the same run, interleaved run by run, each in its own process (Limen as `limen serve` builds it, Server GC; Debian's websockify 0.10); the client and the target server share the bench process. Reproduce: `bench/console-proxy`.");
        text.AppendLine(i, $"Throughput: {options.Megabytes} MiB from the server to a WebSocket client, {options.Runs} runs each (median). Latency: {options.Pings} round trips of {16}-byte messages each; \"added\" is the median minus the median of the same round trip over direct TCP ({directMedian.ToString("F1", i)} µs).");
        text.AppendLine();
        text.AppendLine("| proxy | throughput MiB/s (median) | RTT median µs | RTT p99 µs | added latency µs (median) |");
        text.AppendLine("|---|---:|---:|---:|---:|");
        foreach (var name in throughput.Keys)
        {
            text.AppendLine(i, $"| {name} | {Median(throughput[name]):F1} | {Median(latency[name]):F1} | {Percentile(latency[name], 0.99):F1} | {added[name]:F1} |");
        }

        text.AppendLine();
        text.AppendLine(i, $"Throughput per run, MiB/s — limen: {string.Join(", ", throughput["limen"].Select(v => v.ToString("F0", i)))}; websockify: {string.Join(", ", throughput["websockify"].Select(v => v.ToString("F0", i)))}.");
        text.AppendLine();
        text.AppendLine(i, $"limen / websockify: throughput ×{Median(throughput["limen"]) / Median(throughput["websockify"]):F2}, added latency ×{added["limen"] / added["websockify"]:F2} (lower is better).");
        text.AppendLine(i, $"Targets (issue 5): throughput ≥ websockify's — {(Median(throughput["limen"]) >= Median(throughput["websockify"]) ? "met" : "NOT met")}; median added latency ≤ websockify's — {(added["limen"] <= added["websockify"] ? "met" : "NOT met")}.");
        return text.ToString();
    }

    private static double Median(List<double> values) => Percentile(values, 0.5);

    private static double Percentile(List<double> values, double p)
    {
        var sorted = values.Order().ToList();
        return sorted[Math.Min(sorted.Count - 1, (int)Math.Floor(p * sorted.Count))];
    }
}
