using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Limen.Libvirt;
using Npgsql;

namespace Limen.Tests.Infrastructure;

/// <summary>
/// `limen serve` as a real process on qemu:///system, with a database, a state folder and a domain
/// prefix of its own that outlive each process: the fault tests kill it and start it again on the
/// same state. Everything the server made is read back from the outside (PostgreSQL, libvirt, the
/// disk folder), and removed on dispose even when the test failed.
/// </summary>
public sealed class ServeStack : IAsyncDisposable
{
    public const string Uri = "qemu:///system";
    private const int SigKillExitCode = 137;

    private readonly string connectionString;
    private readonly TestDatabase? ownDatabase;
    private readonly Dictionary<string, string> settings;
    private readonly List<ServeReplica> replicas = [];

    private ServeStack(string connectionString, TestDatabase? ownDatabase, string stateDir, string diskDir, Dictionary<string, string> settings)
    {
        this.connectionString = connectionString;
        this.ownDatabase = ownDatabase;
        this.settings = settings;
        StateDir = stateDir;
        DiskDir = diskDir;
    }

    public string StateDir { get; }
    public string DiskDir { get; }
    public string AdminPassword { get; } = "admin-" + Guid.NewGuid().ToString("N");

    /// <summary>Unique to this stack (still under the sweepable `limen-test-`), so its domains can be told from everyone else's.</summary>
    public string DomainPrefix { get; } = $"limen-test-{Guid.NewGuid().ToString("N")[..8]}-";

    public LimenProcess? Process { get; private set; }
    public Uri? BaseAddress { get; private set; }

    /// <param name="connectionString">A database to use (e.g. a <see cref="PrivatePostgres"/> one); else a fresh test database.</param>
    /// <param name="diskDir">Where VM disks go (e.g. a tmpfs); else &lt;state&gt;/disks.</param>
    public static async Task<ServeStack> CreateAsync(string? connectionString = null, string? diskDir = null, IDictionary<string, string>? settings = null)
    {
        var database = connectionString is null ? await TestDatabase.CreateAsync() : null;
        var stateDir = Directory.CreateTempSubdirectory("limen-test-state-").FullName;
        // QEMU (as libvirt-qemu) must pass through to the VM disks inside.
        File.SetUnixFileMode(stateDir, (UnixFileMode)Convert.ToInt32("711", 8));
        return new ServeStack(connectionString ?? database!.ConnectionString, database, stateDir,
            diskDir ?? Path.Combine(stateDir, "disks"), new Dictionary<string, string>(settings ?? new Dictionary<string, string>()));
    }

    /// <summary>Starts `limen serve` (with the crash point armed, if given) and waits until it listens.</summary>
    /// <param name="serverId">Limen:ServerId; else the server keeps the id it writes into the state folder.</param>
    public async Task StartAsync(string? crashAt = null, string? serverId = null)
    {
        var port = Ports.Free();
        var environment = ServeEnvironment(port, serverId);
        if (crashAt is not null)
        {
            environment["Limen__Faults__CrashAt"] = crashAt;
        }

        Process?.Dispose();
        Process = LimenProcess.Start(environment, "serve");
        BaseAddress = new Uri($"http://127.0.0.1:{port}");
        await Process.WaitForOutputAsync(l => l.Contains("Now listening on", StringComparison.Ordinal), TimeSpan.FromSeconds(90));
    }

    /// <summary>
    /// Another `limen serve` beside the first, as a replica behind a load balancer: the same
    /// database, libvirt, domain prefix, disk and image folders and signing key (the state folder),
    /// a port and server id of its own. Stopped on dispose with the stack.
    /// </summary>
    public async Task<ServeReplica> StartReplicaAsync(string serverId)
    {
        var port = Ports.Free();
        var replica = new ServeReplica(LimenProcess.Start(ServeEnvironment(port, serverId), "serve"), new Uri($"http://127.0.0.1:{port}"));
        replicas.Add(replica);
        await replica.Process.WaitForOutputAsync(l => l.Contains("Now listening on", StringComparison.Ordinal), TimeSpan.FromSeconds(90));
        return replica;
    }

    private Dictionary<string, string> ServeEnvironment(int port, string? serverId)
    {
        // As LimenTestServer: the test driver's fixed 3 GiB node must not refuse the VMs tests create
        // (a test's own settings may say otherwise).
        var environment = new Dictionary<string, string>
        {
            ["Limen__Placement__CpuOvercommit"] = "100",
            ["Limen__Placement__MemoryOvercommit"] = "100",
        };
        foreach (var (key, value) in settings)
        {
            environment[key] = value;
        }

        foreach (var (key, value) in new Dictionary<string, string>
        {
            ["LIMEN_STATE_DIR"] = StateDir,
            ["LIMEN_URLS"] = $"http://127.0.0.1:{port}",
            ["LIMEN_ADMIN_PASSWORD"] = AdminPassword,
            ["ConnectionStrings__Limen"] = connectionString,
            ["Limen__Hypervisor__Uri"] = Uri,
            ["Limen__Hypervisor__DomainPrefix"] = DomainPrefix,
            ["Limen__Hypervisor__DiskDir"] = DiskDir,
            ["Limen__Hypervisor__ReconcileIntervalSeconds"] = "2",
            ["Limen__Auth__LoginAttemptsPerIpPerMinute"] = "1000",
            ["Limen__Auth__LoginAttemptsPerUserPerMinute"] = "1000",
        })
        {
            environment[key] = value;
        }

        if (serverId is not null)
        {
            environment["Limen__ServerId"] = serverId;
        }

        return environment;
    }

    /// <summary>Waits for the armed crash point to kill the server; fails unless it died of SIGKILL at exactly that point.</summary>
    public async Task AssertKilledAtAsync(string point)
    {
        var process = Process ?? throw new InvalidOperationException("not started");
        Assert.True(await process.WaitForExitAsync(TimeSpan.FromSeconds(60)), $"limen serve did not die at {point}");
        var output = string.Join('\n', process.Output);
        Assert.True(process.ExitCode == SigKillExitCode, $"exit code {process.ExitCode}, not SIGKILL:\n{output}");
        Assert.Contains($"crash point {point} reached", output, StringComparison.Ordinal);
    }

    public HttpClient Client(string? accessToken = null) => ApiClient.Create(BaseAddress ?? throw new InvalidOperationException("not started"), accessToken);

    public Task<string> LoginAsync(string username, string password) => ApiClient.LoginAsync(BaseAddress ?? throw new InvalidOperationException("not started"), username, password);

    public Task<string> AdminTokenAsync() => LoginAsync("admin", AdminPassword);

    /// <summary>A user of its own (created through the admin API) and a token for it.</summary>
    public async Task<string> UserTokenAsync(string username)
    {
        const string password = "correct horse battery";
        using var admin = Client(await AdminTokenAsync());
        (await admin.PostAsJsonAsync("/api/admin/users", new { username, password, role = "user" })).EnsureSuccessStatusCode();
        return await LoginAsync(username, password);
    }

    /// <summary>A 64 MiB blank qcow2 registered as a disk image: enough to define, start (SeaBIOS finds nothing to boot) and snapshot VMs.</summary>
    public async Task<Guid> RegisterBlankImageAsync()
    {
        var images = Path.Combine(StateDir, "images");
        Directory.CreateDirectory(images);
        await ExternalProcess.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", Path.Combine(images, "blank.qcow2"), "64M");
        using var admin = Client(await AdminTokenAsync());
        var response = await admin.PostAsJsonAsync("/api/admin/images", new { name = "blank", file_name = "blank.qcow2", kind = "disk" });
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, body);
        return JsonDocument.Parse(body).RootElement.GetProperty("id").GetGuid();
    }

    public string DiskPath(Guid vmId) => Path.Combine(DiskDir, $"{vmId}.qcow2");

    public async Task<long> ScalarAsync(string sql, params (string Name, object Value)[] parameters)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value);
        }

        return Convert.ToInt64(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    public async Task<List<T>> QueryAsync<T>(string sql, Func<NpgsqlDataReader, T> read)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<T>();
        while (await reader.ReadAsync())
        {
            rows.Add(read(reader));
        }

        return rows;
    }

    /// <summary>Asks libvirt directly, on a connection of the test's own (a fresh one: libvirtd may have been restarted).</summary>
    public static T Libvirt<T>(Func<LibvirtConnection, T> query)
    {
        using var connection = LibvirtConnection.Open(Uri);
        return query(connection);
    }

    /// <summary>This stack's domains: UUID → (active, names of their snapshots).</summary>
    public Dictionary<Guid, (bool Active, HashSet<string> Snapshots)> Domains() => Libvirt(c =>
    {
        var result = new Dictionary<Guid, (bool, HashSet<string>)>();
        foreach (var domain in c.ListAllDomains())
        {
            using (domain)
            {
                if (domain.Name.StartsWith(DomainPrefix, StringComparison.Ordinal))
                {
                    var snapshots = domain.ListAllSnapshots();
                    result[domain.Uuid] = (domain.IsActive, snapshots.Select(s => s.Name).ToHashSet());
                    foreach (var snapshot in snapshots)
                    {
                        snapshot.Dispose();
                    }
                }
            }
        }

        return result;
    });

    /// <summary>
    /// Rows, domains and files agree: nothing pending, every VM row has its domain and disk and
    /// nothing else exists, and each domain's snapshots are exactly its rows' snapshots.
    /// </summary>
    /// <param name="foreignFiles">Files in the disk folder that the test put there itself.</param>
    public async Task AssertAgreementAsync(params string[] foreignFiles)
    {
        var vms = await QueryAsync("SELECT id, state FROM vms", r => (Id: r.GetGuid(0), State: r.GetString(1)));
        var snapshots = await QueryAsync("SELECT id, vm_id, state FROM vm_snapshots", r => (Id: r.GetGuid(0), VmId: r.GetGuid(1), State: r.GetString(2)));
        var domains = Domains();
        var files = Directory.Exists(DiskDir) ? Directory.GetFiles(DiskDir).Select(Path.GetFileName).ToList() : [];
        var report = $"rows: {string.Join(", ", vms)}\nsnapshots: {string.Join(", ", snapshots)}\n" +
            $"domains: {string.Join(", ", domains.Select(d => $"{d.Key} [{string.Join(' ', d.Value.Snapshots)}]"))}\nfiles: {string.Join(", ", files)}";

        Assert.True(vms.All(v => v.State is not ("creating" or "deleting")), "a VM operation is still pending\n" + report);
        Assert.True(snapshots.All(s => s.State == "ready"), "a snapshot operation is still pending\n" + report);
        Assert.True(vms.Select(v => v.Id).ToHashSet().SetEquals(domains.Keys), "VM rows and domains differ\n" + report);
        var disks = vms.Select(v => $"{v.Id}.qcow2").ToHashSet();
        Assert.True(disks.IsSubsetOf(files!), "a VM has no disk\n" + report);
        var belonging = disks.Concat(vms.Select(v => $"{v.Id}.serial.log")).ToHashSet();
        Assert.True(files.All(f => belonging.Contains(f!) || foreignFiles.Contains(f)), "a file belongs to no VM\n" + report);
        foreach (var (id, domain) in domains)
        {
            var rows = snapshots.Where(s => s.VmId == id).Select(s => "limen-" + s.Id.ToString("N")).ToHashSet();
            Assert.True(rows.SetEquals(domain.Snapshots), $"snapshots of {id} differ from their rows\n" + report);
        }
    }

    public async ValueTask DisposeAsync()
    {
        Process?.Dispose();
        foreach (var replica in replicas)
        {
            replica.Process.Dispose();
        }

        try
        {
            await RemoveDomainsAsync();
        }
        finally
        {
            Directory.Delete(StateDir, recursive: true);
            if (ownDatabase is not null)
            {
                await ownDatabase.DisposeAsync();
            }
        }
    }

    /// <summary>Waits (up to a minute) for a libvirtd that another fault test has just restarted.</summary>
    private async Task RemoveDomainsAsync()
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                RemoveDomains();
                return;
            }
            catch (LibvirtException) when (attempt < 60)
            {
                await Task.Delay(1000);
            }
        }
    }

    private void RemoveDomains() =>
        Libvirt(c =>
        {
            foreach (var domain in c.ListAllDomains())
            {
                using (domain)
                {
                    if (domain.Name.StartsWith(DomainPrefix, StringComparison.Ordinal))
                    {
                        if (domain.IsActive)
                        {
                            domain.Destroy();
                        }

                        domain.Undefine(DomainUndefineFlags.SnapshotsMetadata | DomainUndefineFlags.ManagedSave);
                    }
                }
            }

            return true;
        });
}

/// <summary>A further `limen serve` of a <see cref="ServeStack"/> (<see cref="ServeStack.StartReplicaAsync"/>).</summary>
public sealed record ServeReplica(LimenProcess Process, Uri BaseAddress)
{
    public HttpClient Client(string? accessToken = null) => ApiClient.Create(BaseAddress, accessToken);
}
