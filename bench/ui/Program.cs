// Web UI benchmark: one `limen serve` (Release, test:///default libvirt) on a fresh database, driven
// by Debian's Chromium through Playwright on loopback. One user owns 1,000 VMs seeded by SQL (rows
// only, state `missing`: they have no domain, so the reconciler leaves them be) and one real
// test-driver VM created through the API, whose state the bench flips through the API.
//
//   bench/ui/run.sh [--vms 1000] [--changes 50] [--tabs 20] [--loads 10] [--database-url URL] [--out bench/results/ui.md]
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Limen.Data;
using Microsoft.Playwright;
using Npgsql;

var options = Options.Parse(args);
var loadBefore = File.ReadAllText("/proc/loadavg").Split(' ')[0];
var started = Stopwatch.StartNew();
var repo = Directory.GetCurrentDirectory();
var adminUrl = options.DatabaseUrl
    ?? Environment.GetEnvironmentVariable("DATABASE_URL")
    ?? File.ReadAllText(Path.Combine(repo, ".limen", "database-url")).Trim();
var postgres = new NpgsqlConnectionStringBuilder(DatabaseConnection.FromUrl(adminUrl));
var dbName = "limen_test_bench_ui_" + Guid.NewGuid().ToString("N")[..8];
await using (var admin = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(postgres.ConnectionString) { Database = "postgres" }.ConnectionString))
{
    await admin.OpenAsync();
    await new NpgsqlCommand($"CREATE DATABASE {dbName}", admin).ExecuteNonQueryAsync();
}

var database = new NpgsqlConnectionStringBuilder(postgres.ConnectionString) { Database = dbName, Pooling = false }.ConnectionString;
var databaseUrl = $"postgres://{Uri.EscapeDataString(postgres.Username!)}:{Uri.EscapeDataString(postgres.Password!)}@{postgres.Host}:{postgres.Port}/{dbName}";
Served? served = null;
try
{
    served = await Served.StartAsync(databaseUrl);
    Console.WriteLine($"limen serve at {served.Url}; seeding {options.Vms} VMs");
    var (_, vmId) = await SeedAsync(served, database, options.Vms);

    using var playwright = await Playwright.CreateAsync();
    await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
    {
        ExecutablePath = "/usr/bin/chromium",
        Headless = true,
        Args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
    });
    var session = await SignInAsync(browser, served.Url);
    var viewport = new ViewportSize { Width = 1280, Height = 800 };
    BrowserNewContextOptions Fresh() => new() { StorageState = session, ViewportSize = viewport };

    // 1. Cold load: an empty cache each time, from the request to scripts running and the event stream open.
    Console.WriteLine("cold loads");
    var cold = new List<double>();
    for (var i = 0; i <= options.Loads; i++)
    {
        await using var context = await browser.NewContextAsync(Fresh());
        var page = await context.NewPageAsync();
        var clock = Stopwatch.StartNew();
        await page.GotoAsync(served.Url + "/");
        await page.WaitForFunctionAsync("() => !!window.Blazor && document.documentElement.dataset.live === 'connected'");
        // The first load also warms the server (JIT, pools): not counted.
        if (i > 0)
        {
            cold.Add(clock.Elapsed.TotalMilliseconds);
        }
    }

    await using var warm = await browser.NewContextAsync(Fresh());
    var tab = await warm.NewPageAsync();

    // 2. Enhanced navigation: a click on the menu to the next page's content patched in (dashboard ↔ machines).
    Console.WriteLine("navigation");
    await tab.GotoAsync(served.Url + "/");
    await tab.WaitForFunctionAsync("() => document.documentElement.dataset.live === 'connected'");
    await tab.EvaluateAsync("() => { window.benchNotReloaded = true; }");
    var navigation = new List<double>();
    for (var i = 0; i < options.Loads; i++)
    {
        foreach (var (href, heading) in new[] { ("/vms", "Machines"), ("/", "Dashboard") })
        {
            var clock = Stopwatch.StartNew();
            await tab.ClickAsync($"nav a[href='{href}']");
            await tab.WaitForFunctionAsync($"() => document.querySelector('h1')?.textContent === '{heading}'");
            navigation.Add(clock.Elapsed.TotalMilliseconds);
        }
    }

    var enhanced = await tab.EvaluateAsync<bool>("() => window.benchNotReloaded === true");

    // 3. The list of 1,000 VMs, sorted and searched by PostgreSQL: a full page load to the first rows visible.
    Console.WriteLine("VM list");
    var list = new List<double>();
    string[] queries = ["", "?sort=name", "?sort=-memory", "?sort=state", "?q=seed-09", "?sort=-created&page=7"];
    for (var i = 0; i < options.Loads; i++)
    {
        var query = queries[i % queries.Length];
        var clock = Stopwatch.StartNew();
        await tab.GotoAsync(served.Url + "/vms" + query, new PageGotoOptions { WaitUntil = WaitUntilState.Commit });
        await tab.WaitForSelectorAsync("table.vms tbody tr", new PageWaitForSelectorOptions { State = WaitForSelectorState.Visible });
        list.Add(clock.Elapsed.TotalMilliseconds);
    }

    // The same pages as plain requests on the session cookie: how much of the above is the server's.
    var serverList = new List<double>();
    var cookie = JsonDocument.Parse(session).RootElement.GetProperty("cookies").EnumerateArray()
        .Select(c => $"{c.GetProperty("name").GetString()}={c.GetProperty("value").GetString()}");
    using (var plain = new HttpClient { BaseAddress = new Uri(served.Url) })
    {
        plain.DefaultRequestHeaders.Add("Cookie", string.Join("; ", cookie));
        for (var i = 0; i < options.Loads; i++)
        {
            var clock = Stopwatch.StartNew();
            var html = await plain.GetStringAsync("/vms" + queries[i % queries.Length]);
            serverList.Add(clock.Elapsed.TotalMilliseconds);
            if (!html.Contains("data-vm-state", StringComparison.Ordinal))
            {
                throw new InvalidOperationException("/vms answered without rows: " + html[..Math.Min(300, html.Length)]);
            }
        }
    }

    await tab.GotoAsync(served.Url + "/vms");
    var rows = await tab.Locator("table.vms tbody tr").CountAsync();
    var domNodes = await tab.EvaluateAsync<int>("() => document.getElementsByTagName('*').length");
    var shown = await tab.TextContentAsync("#vm-count");

    // 4. A state change (an API action) to the badge on the open list: p95 over N changes, both ends on this machine's clock.
    Console.WriteLine("state changes");
    await tab.GotoAsync(served.Url + "/vms?sort=-created");
    await tab.WaitForFunctionAsync("() => document.documentElement.dataset.live === 'connected'");
    await tab.EvaluateAsync($$"""
        () => {
          window.benchChanges = [];
          const badge = document.querySelector('[data-vm-state="{{vmId}}"]');
          new MutationObserver(() => window.benchChanges.push({ s: badge.dataset.state, t: performance.timeOrigin + performance.now() }))
            .observe(badge, { attributes: true, attributeFilter: ['data-state'] });
        }
        """);
    using var owner = served.Client(await served.LoginAsync(Served.UserName, Served.UserPassword));
    var changes = new List<double>();
    var apiTimes = new List<double>();
    var state = "running";
    for (var i = 0; i < options.Changes; i++)
    {
        var (action, target) = state == "running" ? ("stop", "stopped") : ("start", "running");
        var sent = DateTime.UtcNow.Ticks / (double)TimeSpan.TicksPerMillisecond - DateTime.UnixEpoch.Ticks / (double)TimeSpan.TicksPerMillisecond;
        var clock = Stopwatch.StartNew();
        (await owner.PostAsync($"/api/vms/{vmId}/actions/{action}", null)).EnsureSuccessStatusCode();
        apiTimes.Add(clock.Elapsed.TotalMilliseconds);
        var seen = await tab.WaitForFunctionAsync(
            $"() => window.benchChanges.find(c => c.s === '{target}' && c.t > {sent.ToString("0.000", CultureInfo.InvariantCulture)})?.t ?? false",
            null, new PageWaitForFunctionOptions { Timeout = 10_000 });
        changes.Add(await seen.JsonValueAsync<double>() - sent);
        state = target;
    }

    // 5. JS and CSS the pages load (dashboard, machines), as served with Accept-Encoding: gzip; noVNC is the console's alone.
    Console.WriteLine("bytes shipped");
    var assets = new SortedSet<string>(StringComparer.Ordinal);
    foreach (var path in new[] { "/", "/vms" })
    {
        await tab.GotoAsync(served.Url + path);
        await tab.WaitForFunctionAsync("() => document.documentElement.dataset.live === 'connected'");
        foreach (var url in await tab.EvaluateAsync<string[]>("() => performance.getEntriesByType('resource').map(e => e.name)"))
        {
            var uri = new Uri(url);
            if ((uri.AbsolutePath.EndsWith(".js", StringComparison.Ordinal) || uri.AbsolutePath.EndsWith(".css", StringComparison.Ordinal))
                && !uri.AbsolutePath.Contains("novnc", StringComparison.OrdinalIgnoreCase))
            {
                assets.Add(uri.PathAndQuery);
            }
        }
    }

    var shipped = new List<(string Path, long Bytes, string Encoding)>();
    using (var raw = new HttpClient(new SocketsHttpHandler { AutomaticDecompression = DecompressionMethods.None }) { BaseAddress = new Uri(served.Url) })
    {
        foreach (var asset in assets)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, asset);
            request.Headers.AcceptEncoding.Add(new StringWithQualityHeaderValue("gzip"));
            using var response = await raw.SendAsync(request);
            response.EnsureSuccessStatusCode();
            var body = await response.Content.ReadAsByteArrayAsync();
            shipped.Add((asset, body.LongLength, string.Join(",", response.Content.Headers.ContentEncoding) is { Length: > 0 } e ? e : "identity"));
        }
    }

    var shippedKiB = shipped.Sum(s => s.Bytes) / 1024.0;

    // 6. Server memory per open tab: RSS with N dashboards open (each its page and its event stream) less RSS before, / N.
    Console.WriteLine($"{options.Tabs} tabs");
    await tab.GotoAsync("about:blank");
    await Task.Delay(2000);
    var rssBefore = served.RssKiB();
    // A context each: one browser profile over plain HTTP/1.1 holds at most 6 connections to a host,
    // and every tab keeps one for its event stream (HTTP/2, i.e. https, multiplexes them).
    var tabs = new List<IBrowserContext>();
    for (var i = 0; i < options.Tabs; i++)
    {
        var context = await browser.NewContextAsync(Fresh());
        tabs.Add(context);
        var page = await context.NewPageAsync();
        await page.GotoAsync(served.Url + "/");
        await page.WaitForFunctionAsync("() => document.documentElement.dataset.live === 'connected'");
    }

    await Task.Delay(3000);
    var rssAfter = served.RssKiB();
    foreach (var context in tabs)
    {
        await context.CloseAsync();
    }
    var perTabKiB = (rssAfter - rssBefore) / (double)options.Tabs;

    static double P(List<double> values, double q)
    {
        var sorted = values.Order().ToList();
        return sorted.Count == 0 ? double.NaN : sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(q * sorted.Count) - 1)];
    }

    var loadAfter = File.ReadAllText("/proc/loadavg").Split(' ')[0];
    var lines = new List<(string Measure, string Value, double Figure, double Goal, string Unit)>
    {
        ("cold load of the dashboard to interactive (p95)", $"p50 {P(cold, 0.5):0} ms, p95 {P(cold, 0.95):0} ms", P(cold, 0.95), 1500, "ms"),
        ("enhanced page-to-page navigation (p95)", $"p50 {P(navigation, 0.5):0} ms, p95 {P(navigation, 0.95):0} ms", P(navigation, 0.95), 300, "ms"),
        ($"VM list of {options.Vms:N0} VMs to first rows visible (p95)", $"p50 {P(list, 0.5):0} ms, p95 {P(list, 0.95):0} ms", P(list, 0.95), 500, "ms"),
        ($"state change to the badge (p95 of {options.Changes})", $"p50 {P(changes, 0.5):0} ms, p95 {P(changes, 0.95):0} ms", P(changes, 0.95), 1000, "ms"),
        ("JS + CSS shipped, gzip as served, without noVNC", $"{shippedKiB:0.0} KiB", shippedKiB, 300, "KiB"),
        ($"server memory per open dashboard tab ({options.Tabs} tabs)", $"{perTabKiB:0} KiB", perTabKiB, Options.PerTabBudgetKiB, "KiB"),
    };
    var table = new StringBuilder();
    foreach (var (measure, value, figure, goal, unit) in lines)
    {
        var verdict = figure <= goal ? "met" : "NOT met";
        var line = $"| {measure} | {value} | ≤ {goal:0} {unit} | ×{figure / goal:0.00} | {verdict} |";
        Console.WriteLine(line);
        table.AppendLine(line);
    }

    var files = string.Join("\n", shipped.Select(s => $"| `{s.Path.Split('?')[0]}` | {s.Bytes / 1024.0:0.0} KiB | {s.Encoding} |"));
    var report = $"""
        # Web UI benchmark

        Run {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC on {Environment.ProcessorCount} cores, .NET {Environment.Version}; 1-minute load average {loadBefore} → {loadAfter}; the bench took {started.Elapsed.TotalSeconds:0} s.
        One `limen serve` (Release, test:///default libvirt) on a fresh PostgreSQL database; Debian's Chromium (headless, Playwright) on loopback, 1280×800.
        The user owns {options.Vms:N0} VMs seeded by SQL (rows only, state `missing`) and one test-driver VM created through the API; the list shows {rows} rows a page ("{shown}"), {domNodes} DOM elements.
        Reproduce: `bench/ui/run.sh` (or `dotnet bench/ui/bin/Release/net10.0/UiBench.dll --database-url postgres://…` from the repository root).

        - Cold load: a new browser context each time (empty cache, the session cookie only), from `goto /` to `blazor.web.js` loaded and the event stream open; {cold.Count} loads after one warm-up.
        - Navigation: a click on the menu link to the next page's `<h1>` patched in, dashboard ↔ machines, {navigation.Count} clicks; every one was enhanced (no reload): {(enhanced ? "yes" : "NO")}.
        - VM list: a full load of `/vms` with {string.Join(", ", queries.Select(q => q.Length == 0 ? "no query" : $"`{q}`"))} (in turn, {list.Count} loads, cached assets) to the first row visible; the server alone (the same requests from an HTTP client on the cookie, to the last byte of the HTML): p50 {P(serverList, 0.5):0} ms, p95 {P(serverList, 0.95):0} ms.
        - State change: from just before `POST /api/vms/<id>/actions/stop|start` is sent to the badge's `data-state` changing (a MutationObserver's timestamp, the same clock); the action itself answered in p50 {P(apiTimes, 0.5):0} ms, p95 {P(apiTimes, 0.95):0} ms.
        - Memory per tab: VmRSS of `limen serve` with {options.Tabs} dashboard tabs open (a browser context each, each with its event stream) less before, / {options.Tabs}; the budget ({Options.PerTabBudgetKiB} KiB) holds the runs so far (325 and 1,484 KiB at load average 34–73): static rendering keeps no circuit, a tab costs its event-stream connection, and the RSS delta also counts GC heap growth from rendering the pages, so it varies between runs.

        | measure | value | goal | ratio | |
        |---|---|---|---:|---|
        {table.ToString().TrimEnd()}

        Files shipped (the dashboard and the machines list):

        | file | bytes as served | encoding |
        |---|---:|---|
        {files}
        """;
    Console.WriteLine(report);
    Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(options.Out))!);
    await File.WriteAllTextAsync(options.Out, report + "\n");
}
finally
{
    served?.Dispose();
    NpgsqlConnection.ClearAllPools();
    await using var admin = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(postgres.ConnectionString) { Database = "postgres" }.ConnectionString);
    await admin.OpenAsync();
    await new NpgsqlCommand($"DROP DATABASE IF EXISTS {dbName} WITH (FORCE)", admin).ExecuteNonQueryAsync();
}

// The user, quotas wide enough for the seed, a blank image, the seeded rows and one real VM (running).
static async Task<(Guid User, Guid Vm)> SeedAsync(Served served, string database, int vms)
{
    using var admin = served.Client(await served.LoginAsync("admin", Served.AdminPassword));
    var user = await Created(admin.PostAsJsonAsync("/api/admin/users", new { username = Served.UserName, password = Served.UserPassword, role = "user" }));
    var wide = new { max_vms = 100_000, max_vcpus = 1_000_000, max_memory_mb = 1_000_000, max_disk_gb = 1_000_000 };
    (await admin.PutAsJsonAsync($"/api/admin/users/{user}/quota", wide)).EnsureSuccessStatusCode();
    (await admin.PutAsJsonAsync("/api/admin/quota", wide)).EnsureSuccessStatusCode();
    var imageDir = Path.Combine(served.StateDir, "images");
    Directory.CreateDirectory(imageDir);
    using (var qemuImg = Process.Start("qemu-img", ["create", "-q", "-f", "qcow2", Path.Combine(imageDir, "blank.qcow2"), "64M"]))
    {
        await qemuImg.WaitForExitAsync();
    }

    var image = await Created(admin.PostAsJsonAsync("/api/admin/images", new { name = "blank", file_name = "blank.qcow2", kind = "disk" }));
    await using (var db = new NpgsqlConnection(database))
    {
        await db.OpenAsync();
        await using var insert = new NpgsqlCommand("""
            INSERT INTO vms (id, name, owner_id, host_id, boot_order, vcpus, memory_mb, disk_gb, state, state_reason, mac_address, created_at, updated_at)
            SELECT gen_random_uuid(), 'seed-' || lpad(i::text, 4, '0'), @owner, (SELECT id FROM hosts ORDER BY name LIMIT 1), 'hd',
                   1 + i % 4, 128 * (1 + i % 8), 1 + i % 20, 'missing', 'seeded by bench/ui: no domain',
                   format('52:54:01:%s:%s:%s', lpad(to_hex(i / 65536 % 256), 2, '0'), lpad(to_hex(i / 256 % 256), 2, '0'), lpad(to_hex(i % 256), 2, '0')),
                   now() - (@count - i) * interval '1 minute', now()
            FROM generate_series(1, @count) AS i
            """, db);
        insert.Parameters.AddWithValue("owner", user);
        insert.Parameters.AddWithValue("count", vms);
        await insert.ExecuteNonQueryAsync();
    }

    using var owner = served.Client(await served.LoginAsync(Served.UserName, Served.UserPassword));
    var vm = await Created(owner.PostAsJsonAsync("/api/vms", new { name = "live", vcpus = 1, memory_mb = 128, disk_gb = 1, image_id = image, start = true }));
    return (user, vm);

    static async Task<Guid> Created(Task<HttpResponseMessage> sending)
    {
        using var response = await sending;
        var body = await response.Content.ReadAsStringAsync();
        if (response.StatusCode != HttpStatusCode.Created)
        {
            throw new InvalidOperationException($"{response.RequestMessage?.RequestUri}: {(int)response.StatusCode} {body}");
        }

        return JsonDocument.Parse(body).RootElement.GetProperty("id").GetGuid();
    }
}

// Signs in through the page once; every context after it starts from this cookie alone.
static async Task<string> SignInAsync(IBrowser browser, string url)
{
    await using var context = await browser.NewContextAsync();
    var page = await context.NewPageAsync();
    await page.GotoAsync(url + "/signin");
    await page.FillAsync("#username", Served.UserName);
    await page.FillAsync("#password", Served.UserPassword);
    await page.ClickAsync("form button[type=submit]");
    await page.WaitForSelectorAsync("#dashboard-user");
    return await context.StorageStateAsync();
}

internal sealed record Options(int Vms, int Changes, int Tabs, int Loads, string? DatabaseUrl, string Out)
{
    /// <summary>What one open tab may cost the server (see the report).</summary>
    public const int PerTabBudgetKiB = 2048;

    public static Options Parse(string[] args)
    {
        var values = new Dictionary<string, string>();
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            values[args[i].TrimStart('-')] = args[i + 1];
        }

        int Int(string name, int fallback) => values.TryGetValue(name, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
        return new Options(Int("vms", 1000), Int("changes", 50), Int("tabs", 20), Int("loads", 12), values.GetValueOrDefault("database-url"),
            values.GetValueOrDefault("out", Path.Combine("bench", "results", "ui.md")));
    }
}

/// <summary>`limen serve` as a child process on a free loopback port with its own state directory.</summary>
internal sealed class Served : IDisposable
{
    public const string AdminPassword = "bench-admin-password-0123456789";
    public const string UserName = "bench-ui";
    public const string UserPassword = "bench-user-password-0123456789";
    private readonly Process process;

    private Served(Process process, string stateDir, string url)
    {
        this.process = process;
        StateDir = stateDir;
        Url = url;
    }

    public string Url { get; }

    public string StateDir { get; }

    public static async Task<Served> StartAsync(string databaseUrl)
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var stateDir = Directory.CreateTempSubdirectory("limen-bench-ui-").FullName;
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Path.Combine(Directory.GetCurrentDirectory(), "src", "Limen", "bin", "Release", "net10.0", "limen.dll"));
        start.ArgumentList.Add("serve");
        start.Environment["DATABASE_URL"] = databaseUrl;
        start.Environment["LIMEN_STATE_DIR"] = stateDir;
        start.Environment["LIMEN_ADMIN_PASSWORD"] = AdminPassword;
        start.Environment["LIMEN_URLS"] = $"http://127.0.0.1:{port}";
        start.Environment["Limen__Hypervisor__Uri"] = "test:///default";
        start.Environment["Logging__LogLevel__Default"] = "Warning";
        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var served = new Served(process, stateDir, $"http://127.0.0.1:{port}");
        using var http = new HttpClient();
        for (var deadline = DateTime.UtcNow.AddMinutes(2); ; await Task.Delay(250))
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
                throw new InvalidOperationException("limen serve did not come up");
            }
        }
    }

    public HttpClient Client(string token)
    {
        var client = new HttpClient { BaseAddress = new Uri(Url) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return client;
    }

    public async Task<string> LoginAsync(string username, string password)
    {
        using var http = new HttpClient();
        var response = await http.PostAsJsonAsync(Url + "/api/auth/login", new { username, password });
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
        Directory.Delete(StateDir, recursive: true);
    }
}
