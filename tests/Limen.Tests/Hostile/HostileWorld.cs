using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Limen.Libvirt;
using Limen.Tests.Infrastructure;
using Npgsql;

namespace Limen.Tests.Hostile;

/// <summary>Which objects fill a route: the world's own, new ones made for one call, or ids of nothing.</summary>
public enum Objects
{
    Shared,
    Fresh,
    Random,
}

/// <summary>Who sends a request: nobody, the owner of the world's objects, another user, an admin.</summary>
public sealed record Principal(string Name, HttpClient Client, Guid? Id)
{
    public override string ToString() => Name;
}

/// <summary>
/// One server on libvirt's test driver with a small world in it: "user" owns a VM (with a
/// snapshot and a console-session record) on a registered image, "other" owns the same, and
/// "victim" is a plain account for the admin endpoints to aim at. Its domains carry a prefix of
/// their own, so the world's libvirt state can be compared without looking at other tests' domains.
/// </summary>
public sealed class HostileWorld : IAsyncLifetime
{
    public const string WebhookToken = "hostile-webhook-token-0123456789";

    private LimenTestServer? server;
    private IReadOnlyList<string> tables = [];

    public string DomainPrefix { get; } = $"{LimenTestServer.DomainPrefix}h{RandomNumberGenerator.GetHexString(6, lowercase: true)}-";
    public LimenTestServer Server => server ?? throw new InvalidOperationException("not started");
    public IReadOnlyList<ApiEndpoint> Endpoints { get; private set; } = [];

    public Principal Anonymous { get; private set; } = null!;
    public Principal User { get; private set; } = null!;
    public Principal Other { get; private set; } = null!;
    public Principal Admin { get; private set; } = null!;
    public Principal Webhook { get; private set; } = null!;
    public Guid VictimId { get; private set; }

    public Guid ImageId { get; private set; }
    public Guid VmId { get; private set; }
    public string VmName { get; } = "uvm-" + RandomNumberGenerator.GetHexString(8, lowercase: true);
    public Guid SnapshotId { get; private set; }
    public string SnapshotName { get; } = "usnap-" + RandomNumberGenerator.GetHexString(8, lowercase: true);
    public Guid SessionId { get; private set; }
    public Guid OtherVmId { get; private set; }
    public Guid OtherSnapshotId { get; private set; }

    /// <summary>What "other" must never see of "user": ids and the unique names of user's objects.</summary>
    public IEnumerable<string> UserSecrets =>
        new[] { User.Id!.Value.ToString(), VmId.ToString(), VmName, SnapshotId.ToString(), SnapshotName, SessionId.ToString() }
            .Concat(extraSecrets);

    private readonly List<string> extraSecrets = [];

    public async Task InitializeAsync()
    {
        server = await LimenTestServer.StartAsync(new Dictionary<string, string?>
        {
            ["Limen:Hypervisor:DomainPrefix"] = DomainPrefix,
            ["Limen:Alerts:WebhookToken"] = WebhookToken,
            // Nothing listens on the discard port: /agent/… answers its documented 503, never someone else's agent.
            ["Limen:Agent:Url"] = "http://127.0.0.1:9/",
        });
        Endpoints = ApiEndpoints.Read(Server.Services);
        tables = await TablesAsync();

        var (userId, userToken) = await Server.CreateUserAsync("h-user");
        var (otherId, otherToken) = await Server.CreateUserAsync("h-other");
        var (victimId, _) = await Server.CreateUserAsync("h-victim");
        VictimId = victimId;
        var adminToken = await Server.AdminTokenAsync();
        var adminId = (await ProblemAssert.Json(await Server.Client(adminToken).GetAsync("/api/auth/me"))).GetProperty("id").GetGuid();
        Anonymous = new Principal("anonymous", Server.Client(), null);
        User = new Principal("user", Server.Client(userToken), userId);
        Other = new Principal("other", Server.Client(otherToken), otherId);
        Admin = new Principal("admin", Server.Client(adminToken), adminId);
        Webhook = new Principal("webhook", Server.Client(WebhookToken), null);

        await ResetQuotasAsync();
        ImageId = await VmTestKit.RegisterBlankImageAsync(Server, "hostile-disk");
        VmId = (await VmTestKit.CreateVmAsync(User.Client, ImageId, VmName)).GetProperty("id").GetGuid();
        SnapshotId = await SnapshotAsync(User, VmId, SnapshotName);
        SessionId = await ConsoleSessionAsync(userId, VmId, ended: true);
        OtherVmId = (await VmTestKit.CreateVmAsync(Other.Client, ImageId, "ovm")).GetProperty("id").GetGuid();
        OtherSnapshotId = await SnapshotAsync(Other, OtherVmId, "osnap");
    }

    public async Task DisposeAsync()
    {
        if (server is not null)
        {
            // The test driver's domains outlive the server (they live as long as the process).
            VmTestKit.Libvirt(server, c =>
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

                            foreach (var snapshot in domain.ListAllSnapshots())
                            {
                                using (snapshot)
                                {
                                    snapshot.Delete();
                                }
                            }

                            domain.Undefine();
                        }
                    }
                }

                return 0;
            });
            await server.DisposeAsync();
        }
    }

    /// <summary>
    /// The endpoint's path with its object parameters filled: the world's objects of "user", fresh
    /// objects of "user" made for this call, or random ids of nothing. Other parameters come from
    /// <paramref name="values"/>; a parameter neither names is an error, so a new route forces a decision.
    /// </summary>
    public async Task<string> PathAsync(ApiEndpoint endpoint, Objects objects, IReadOnlyDictionary<string, string>? values = null)
    {
        var filled = new Dictionary<string, string>(values ?? new Dictionary<string, string>());
        var vm = VmId;
        foreach (var parameter in endpoint.RouteParameters)
        {
            if (ObjectKind(endpoint, parameter) is not { } kind)
            {
                continue;
            }

            Guid id;
            if (objects == Objects.Random)
            {
                id = Guid.NewGuid();
            }
            else if (objects == Objects.Shared)
            {
                id = kind switch
                {
                    "vm" => VmId, "snapshot" => SnapshotId, "user" => User.Id!.Value, "image" => ImageId, "session" => SessionId,
                    _ => throw new InvalidOperationException(kind),
                };
            }
            else
            {
                var name = $"fx{Interlocked.Increment(ref freshCount)}";
                id = kind switch
                {
                    // A fresh snapshot goes on the world's VM unless the route also took a fresh VM.
                    "vm" => vm = await FreshVmAsync(name),
                    "snapshot" => await SnapshotAsync(User, vm, name),
                    "user" => (await Server.CreateUserAsync(name)).Id,
                    "image" => await VmTestKit.RegisterBlankImageAsync(Server, name),
                    "session" => await ConsoleSessionAsync(User.Id!.Value, VmId, ended: false),
                    _ => throw new InvalidOperationException(kind),
                };
            }

            filled[parameter] = id.ToString();
        }

        return endpoint.Path(filled);
    }

    /// <summary>Which of the world's kinds of object a route parameter names, or null for a plain value.</summary>
    public static string? ObjectKind(ApiEndpoint endpoint, string parameter) => (parameter, endpoint.Pattern) switch
    {
        ("id", var p) when p.StartsWith("/api/vms/", StringComparison.Ordinal) || p.StartsWith("/console/{", StringComparison.Ordinal)
            || p.StartsWith("/vnc/", StringComparison.Ordinal) || p.StartsWith("/vms/{", StringComparison.Ordinal) => "vm",
        ("sid", var p) when p.StartsWith("/api/vms/", StringComparison.Ordinal) => "snapshot",
        ("id", var p) when p.StartsWith("/api/admin/users/", StringComparison.Ordinal) => "user",
        ("id", var p) when p.StartsWith("/api/admin/images/", StringComparison.Ordinal) => "image",
        ("sid", var p) when p.StartsWith("/api/console/sessions/", StringComparison.Ordinal) => "session",
        _ => null,
    };

    private int freshCount;

    /// <summary>
    /// Puts back what a hostile request that slipped through may have changed (quotas, the VM's
    /// settings, the victim's account), so one bug found does not turn into another test's failure.
    /// </summary>
    public async Task ResetAsync()
    {
        await ResetQuotasAsync();
        using var response = await User.Client.GetAsync($"/api/vms/{VmId}");
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"resetting the world: user's VM answers {(int)response.StatusCode} {text}");
        var vm = JsonDocument.Parse(text).RootElement;
        var changes = new Dictionary<string, object>();
        if (vm.GetProperty("name").GetString() != VmName)
        {
            changes["name"] = VmName;
        }

        if (vm.GetProperty("vcpus").GetInt32() != 1)
        {
            changes["vcpus"] = 1;
        }

        if (vm.GetProperty("memory_mb").GetInt32() != 128)
        {
            changes["memory_mb"] = 128;
        }

        if (changes.Count > 0)
        {
            await Expect(User.Client.PatchAsJsonAsync($"/api/vms/{VmId}", changes));
        }

        await Expect(Admin.Client.PatchAsJsonAsync($"/api/admin/users/{VictimId}", new { role = "user", disabled = false }));
    }

    /// <summary>Explicit, generous limits everywhere: room for what the matrix creates, and a known state to return to.</summary>
    private async Task ResetQuotasAsync()
    {
        await Expect(Admin.Client.PutAsJsonAsync("/api/admin/quota",
            new { max_vms = 1000, max_vcpus = 100_000, max_memory_mb = 1_000_000, max_disk_gb = 1_000_000, max_snapshots = 1000 }));
        foreach (var id in new[] { User.Id!.Value, Other.Id!.Value, VictimId })
        {
            await Expect(Admin.Client.PutAsJsonAsync($"/api/admin/users/{id}/quota",
                new { max_vms = 100, max_vcpus = 1000, max_memory_mb = 1_000_000, max_disk_gb = 100_000, max_snapshots = 100 }));
        }
    }

    private static async Task Expect(Task<HttpResponseMessage> call)
    {
        using var response = await call;
        Assert.True(response.IsSuccessStatusCode, $"resetting the world: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
    }

    /// <summary>A VM owned by "user" that a test may consume (delete, reconfigure).</summary>
    public async Task<Guid> FreshVmAsync(string name)
    {
        var id = (await VmTestKit.CreateVmAsync(User.Client, ImageId, name)).GetProperty("id").GetGuid();
        extraSecrets.Add(id.ToString());
        return id;
    }

    public async Task<Guid> SnapshotAsync(Principal owner, Guid vmId, string name)
    {
        var response = await owner.Client.PostAsJsonAsync($"/api/vms/{vmId}/snapshots", new { name, description = "world" });
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, body);
        var id = JsonDocument.Parse(body).RootElement.GetProperty("id").GetGuid();
        if (owner == User)
        {
            extraSecrets.Add(id.ToString());
        }

        return id;
    }

    /// <summary>
    /// A console-session record as a relay leaves it (the test driver has no VNC server to relay):
    /// ended, or still open as a crashed server would leave it.
    /// </summary>
    public async Task<Guid> ConsoleSessionAsync(Guid userId, Guid vmId, bool ended)
    {
        var id = Guid.NewGuid();
        await using var connection = new NpgsqlConnection(Server.Database.ConnectionString);
        await connection.OpenAsync();
        await using var insert = new NpgsqlCommand(
            "INSERT INTO console_sessions (id, user_id, vm_id, started_at, last_activity_at, ended_at, end_reason, client_ip, user_agent) " +
            "VALUES (@id, @user, @vm, now(), now(), CASE WHEN @ended THEN now() END, CASE WHEN @ended THEN 'client_closed' END, '127.0.0.1', 'hostile-world')",
            connection);
        insert.Parameters.AddWithValue("id", id);
        insert.Parameters.AddWithValue("user", userId);
        insert.Parameters.AddWithValue("vm", vmId);
        insert.Parameters.AddWithValue("ended", ended);
        await insert.ExecuteNonQueryAsync();
        if (userId == User.Id)
        {
            extraSecrets.Add(id.ToString());
        }

        return id;
    }

    /// <summary>
    /// The database (every table but the audit trail, which records refusals and may grow) and the
    /// world's libvirt domains (state, definition, snapshots), each reduced to a row count and a hash.
    /// </summary>
    public async Task<WorldState> CaptureAsync()
    {
        var result = new SortedDictionary<string, string>(StringComparer.Ordinal);
        await using (var connection = new NpgsqlConnection(Server.Database.ConnectionString))
        {
            await connection.OpenAsync();
            var sql = string.Join(" UNION ALL ", tables.Select(t =>
                $"SELECT '{t}', count(*), md5(coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), '')) FROM \"{t}\" r"));
            await using var command = new NpgsqlCommand(sql, connection);
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                result["table " + reader.GetString(0)] = $"{reader.GetInt64(1)} rows, md5 {reader.GetString(2)}";
            }
        }

        VmTestKit.Libvirt(Server, c =>
        {
            foreach (var domain in c.ListAllDomains())
            {
                using (domain)
                {
                    if (domain.Name.StartsWith(DomainPrefix, StringComparison.Ordinal))
                    {
                        var snapshots = domain.ListAllSnapshots();
                        var names = string.Join(",", snapshots.Select(s => s.Name).Order(StringComparer.Ordinal));
                        snapshots.ToList().ForEach(s => s.Dispose());
                        var xml = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(domain.GetXmlDesc())));
                        result["domain " + domain.Name] = $"{domain.GetState().State}, xml sha256 {xml}, snapshots [{names}]";
                    }
                }
            }

            return 0;
        });
        return new WorldState(result);
    }

    private async Task<IReadOnlyList<string>> TablesAsync()
    {
        await using var connection = new NpgsqlConnection(Server.Database.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' " +
            "AND table_name NOT IN ('audit_logs', '__EFMigrationsHistory') ORDER BY table_name", connection);
        await using var reader = await command.ExecuteReaderAsync();
        var names = new List<string>();
        while (await reader.ReadAsync())
        {
            names.Add(reader.GetString(0));
        }

        Assert.Contains("vms", names);
        return names;
    }
}

/// <summary>The world reduced to one line per table and per domain; two captures differ where something changed.</summary>
public sealed record WorldState(IReadOnlyDictionary<string, string> Parts)
{
    public IReadOnlyList<string> ChangesSince(WorldState before) =>
        before.Parts.Keys.Union(Parts.Keys).Order(StringComparer.Ordinal)
            .Where(k => before.Parts.GetValueOrDefault(k) != Parts.GetValueOrDefault(k))
            .Select(k => $"{k}: {before.Parts.GetValueOrDefault(k) ?? "absent"} -> {Parts.GetValueOrDefault(k) ?? "absent"}")
            .ToList();
}
