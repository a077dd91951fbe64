using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Limen.Data;
using Limen.Features.Users;
using Limen.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;

namespace Limen.Tests.Infrastructure;

/// <summary>
/// A real `limen serve` (Kestrel on a free loopback port, real PostgreSQL) built by the same
/// composition code as production; only configuration differs: its own database and state dir.
/// </summary>
public sealed class LimenTestServer : IAsyncDisposable
{
    public static readonly JsonSerializerOptions Json = CreateJson();

    /// <summary>Every domain a test creates carries this prefix; ./test.sh sweeps leftovers by it.</summary>
    public const string DomainPrefix = "limen-test-";

    private readonly WebApplication app;

    private LimenTestServer(WebApplication app, TestDatabase database, string stateDir, string adminPassword, Uri baseAddress)
    {
        this.app = app;
        Database = database;
        StateDir = stateDir;
        AdminPassword = adminPassword;
        BaseAddress = baseAddress;
    }

    public TestDatabase Database { get; }
    public string StateDir { get; }
    public string AdminPassword { get; }
    public Uri BaseAddress { get; }
    public IServiceProvider Services => app.Services;

    public static async Task<LimenTestServer> StartAsync(
        IDictionary<string, string?>? settings = null, Action<IServiceCollection>? configureServices = null, TestDatabase? database = null)
    {
        var ownDatabase = database is null;
        database ??= await TestDatabase.CreateAsync();
        var stateDir = Directory.CreateTempSubdirectory("limen-test-state-").FullName;
        // QEMU (as libvirt-qemu) must pass through to the VM disks inside.
        File.SetUnixFileMode(stateDir, (UnixFileMode)Convert.ToInt32("711", 8));
        var adminPassword = "admin-" + Guid.NewGuid().ToString("N");
        var overrides = new Dictionary<string, string?>
        {
            ["urls"] = "http://127.0.0.1:0",
            ["ConnectionStrings:Limen"] = database.ConnectionString,
            ["Limen:StateDir"] = stateDir,
            ["Limen:AdminPassword"] = adminPassword,
            ["Limen:Hypervisor:Uri"] = "test:///default",
            ["Limen:Hypervisor:DomainPrefix"] = DomainPrefix,
            // libvirt's test driver reports one small fixed node (16 CPUs, 3 GiB): tests that create
            // many VMs are not about room, so placement may overcommit as far as it allows; tests of
            // placement set their own ratios.
            ["Limen:Placement:CpuOvercommit"] = "100",
            ["Limen:Placement:MemoryOvercommit"] = "100",
            ["Limen:Auth:LoginAttemptsPerIpPerMinute"] = "1000",
            ["Limen:Auth:LoginAttemptsPerUserPerMinute"] = "1000",
            // Tests send many anonymous requests from one address; AnonymousAuditTests sets its own budget.
            ["Limen:Audit:AnonymousRowsPerIpPerMinute"] = "100000",
            ["Limen:Audit:AnonymousRowsPerMinute"] = "100000",
            ["Logging:LogLevel:Default"] = "Warning",
            ["Logging:LogLevel:Microsoft.EntityFrameworkCore"] = "None",
        };
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
        {
            overrides[key] = value;
        }

        WebApplication? app = null;
        try
        {
            app = LimenServer.Build(overrides, configureServices);
            await LimenStartup.PrepareAsync(app.Services, CancellationToken.None);
            await app.StartAsync();
        }
        catch
        {
            // A server that refuses to start (tests of bad settings) leaves nothing behind either.
            if (app is not null)
            {
                await app.DisposeAsync();
            }

            if (ownDatabase)
            {
                await database.DisposeAsync();
            }

            Directory.Delete(stateDir, recursive: true);
            throw;
        }

        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
        return new LimenTestServer(app, database, stateDir, adminPassword, new Uri(address));
    }

    public HttpClient Client(string? accessToken = null) => ApiClient.Create(BaseAddress, accessToken);

    public Task<string> LoginAsync(string username, string password) => ApiClient.LoginAsync(BaseAddress, username, password);

    public Task<string> AdminTokenAsync() => LoginAsync(AdminBootstrap.Username, AdminPassword);

    /// <summary>Creates a user through the admin API and returns its id and an access token.</summary>
    public async Task<(Guid Id, string Token)> CreateUserAsync(string username, string role = "user")
    {
        const string password = "correct horse battery";
        using var admin = Client(await AdminTokenAsync());
        var response = await admin.PostAsJsonAsync("/api/admin/users", new { username, password, role });
        response.EnsureSuccessStatusCode();
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        return (body.GetProperty("id").GetGuid(), await LoginAsync(username, password));
    }

    public async Task<string> MetricsAsync()
    {
        using var client = Client();
        return await client.GetStringAsync("/api/metrics");
    }

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync();
        await app.DisposeAsync();
        await Database.DisposeAsync();
        Directory.Delete(StateDir, recursive: true);
    }

    private static JsonSerializerOptions CreateJson()
    {
        var json = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        LimenServer.ConfigureJson(json);
        json.UnmappedMemberHandling = System.Text.Json.Serialization.JsonUnmappedMemberHandling.Skip;
        return json;
    }
}
