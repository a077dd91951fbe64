using System.Net;
using System.Text.Json;
using System.Text.Json.Serialization;
using Limen.Data;
using Limen.Features.Alerts;
using Limen.Features.Audit;
using Limen.Features.Auth;
using Limen.Features.Backup;
using Limen.Features.Cluster;
using Limen.Features.Events;
using Limen.Features.Health;
using Limen.Features.Metrics;
using Limen.Features.Migration;
using Limen.Features.Images;
using Limen.Features.RemoteConsole;
using Limen.Features.Hosts;
using Limen.Features.Users;
using Limen.Features.Quotas;
using Limen.Features.Registration;
using Limen.Features.Settings;
using Limen.Features.Snapshots;
using Limen.Features.Vms;
using Limen.Ui;
using Limen.Web;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.HttpOverrides;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using Scalar.AspNetCore;

namespace Limen.Hosting;

/// <summary>Composition of `limen serve`: services, the middleware pipeline and the endpoint map.</summary>
public static class LimenServer
{
    /// <summary>
    /// Npgsql's Application Name on every connection of `limen serve`: `limen restore` looks for it
    /// in pg_stat_activity and refuses to restore under a running server.
    /// </summary>
    public const string DatabaseApplicationName = "limen-serve";

    /// <param name="overrides">Configuration that wins over every other source (command-line options, tests).</param>
    /// <param name="configureServices">Last word on DI (tests swap the clock).</param>
    public static WebApplication Build(IDictionary<string, string?> overrides, Action<IServiceCollection>? configureServices = null)
    {
        // The application is limen whichever process hosts it (the tests' is testhost): its static
        // web assets manifest and its key ring are found by this name.
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            ContentRootPath = AppContext.BaseDirectory,
            ApplicationName = typeof(LimenServer).Assembly.GetName().Name,
        });
        builder.Configuration.AddLimenSources(overrides);
        var options = builder.Configuration.GetLimenOptions();
        StateDirectory.Ensure(options.StateDir);

        builder.WebHost.UseUrls(builder.Configuration["urls"] ?? LimenOptions.DefaultUrls);
        // The UI's files come from the build's static web assets manifest when run from a build
        // output (./run.sh, the tests), from wwwroot when published; without a manifest this is a no-op.
        builder.WebHost.UseStaticWebAssets();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = options.MaxRequestBodyBytes;
        });
        builder.Logging.ClearProviders();
        if (options.ReadableLog(outputIsTerminal: !Console.IsOutputRedirected))
        {
            builder.Logging.AddSimpleConsole(text =>
            {
                text.SingleLine = true;
                text.TimestampFormat = "HH:mm:ss ";
                text.UseUtcTimestamp = true;
            });
        }
        else
        {
            builder.Logging.AddJsonConsole(json =>
            {
                json.IncludeScopes = true;
                json.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
                json.UseUtcTimestamp = true;
            });
        }

        builder.Services.AddLimenCore(builder.Configuration, DatabaseApplicationName);
        builder.Services.AddLimenWeb(options);
        builder.Services.AddCluster();
        builder.Services.AddAudit(builder.Configuration);
        builder.Services.AddHostMetrics(builder.Configuration, options.FullStateDir, sp => sp.GetRequiredService<LimenMetrics>().Host);
        builder.Services.AddMetricsScrape();
        builder.Services.AddAgentProxy(builder.Configuration);
        builder.Services.AddAlerts(builder.Configuration);
        builder.Services.AddVms(builder.Configuration);
        builder.Services.AddMigration(builder.Configuration);
        builder.Services.AddBackupMetrics();
        builder.Services.AddConsole(builder.Configuration);
        builder.Services.AddEvents(builder.Configuration);
        builder.Services.AddUi();
        configureServices?.Invoke(builder.Services);

        var app = builder.Build();
        // Load (or create) the signing key now: an unusable state directory fails the start, not a login.
        app.Services.GetRequiredService<SigningKeyStore>();
        app.UseLimenPipeline(options);
        app.MapLimenEndpoints();
        return app;
    }

    /// <summary>What every command that touches the database needs: options, clock, the DbContext.</summary>
    /// <param name="applicationName">Shown in pg_stat_activity for this process's connections.</param>
    public static IServiceCollection AddLimenCore(this IServiceCollection services, IConfiguration configuration, string applicationName = "limen")
    {
        services.Configure<LimenOptions>(configuration.GetSection(LimenOptions.Section));
        services.Configure<AuthOptions>(configuration.GetSection(AuthOptions.Section));
        services.AddSingleton(TimeProvider.System);
        services.AddSingleton<ServerIdentity>();
        services.AddSingleton<Features.Events.EventOutlet>();
        var connectionString = WithDefaults(DatabaseConnection.Resolve(configuration), applicationName);
        services.AddDbContextFactory<LimenDbContext>(db => db.UseNpgsql(connectionString).UseSnakeCaseNamingConvention());
        return services;
    }

    private static IServiceCollection AddLimenWeb(this IServiceCollection services, LimenOptions options)
    {
        services.AddHttpContextAccessor();
        services.AddSingleton<LimenMetrics>();
        services.AddSingleton<LoopHealth>();
        services.AddSingleton<DependencyProbe>();
        services.AddHostedService(sp => sp.GetRequiredService<DependencyProbe>());
        services.AddSingleton<SigningKeyStore>();
        services.AddSingleton<AccessTokens>();
        services.AddScoped<RefreshTokens>();
        services.AddSingleton<LoginThrottle>();
        services.AddScoped<CredentialCheck>();
        services.AddScoped<SettingsService>();
        services.AddScoped<RegistrationService>();
        services.AddScoped<UserAdmin>();
        services.AddSingleton<IPasswordHasher<User>, PasswordHasher<User>>();

        // Browser session cookies and anti-forgery tokens must open on every replica and survive a
        // restart: the key ring lives in the database, not in one server's state directory.
        services.AddDataProtection().SetApplicationName("limen").PersistKeysToDbContext<LimenDbContext>();

        services.AddProblemDetails(problems => problems.CustomizeProblemDetails = Problems.Customize);
        services.AddExceptionHandler<ProblemExceptionHandler>();
        // Binding failures throw, so the exception handler can answer them with a problem naming the field.
        services.Configure<RouteHandlerOptions>(route => route.ThrowOnBadRequest = true);
        services.ConfigureHttpJsonOptions(json => ConfigureJson(json.SerializerOptions));

        services.AddAuthentication(BrowserSession.TokenOrCookie).AddJwtBearer().AddBrowserSession();
        services.AddOptions<JwtBearerOptions>(JwtBearerDefaults.AuthenticationScheme)
            .Configure<AccessTokens>((jwt, tokens) =>
            {
                jwt.MapInboundClaims = false;
                jwt.TokenValidationParameters = tokens.ValidationParameters();
                jwt.Events = AccessTokenEvents.Create();
            });
        services.AddAuthorizationBuilder()
            .AddPolicy(Policies.Admin, policy => policy.RequireAuthenticatedUser().RequireRole(Roles.Admin));
        services.AddSingleton<IAuthorizationMiddlewareResultHandler, ForbiddenAuditHandler>();

        services.Configure<ForwardedHeadersOptions>(forwarded =>
        {
            forwarded.ForwardedHeaders = ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto;
            // The framework trusts loopback by default; we trust exactly the configured proxies.
            forwarded.KnownIPNetworks.Clear();
            forwarded.KnownProxies.Clear();
            foreach (var proxy in options.TrustedProxies)
            {
                forwarded.KnownProxies.Add(IPAddress.Parse(proxy));
            }
        });

        services.AddOpenApi();
        return services;
    }

    /// <summary>
    /// Strict JSON for the API: the web defaults read numbers from strings and match member names
    /// in any case, and the last of duplicate keys silently wins — each lets a client's mistake
    /// through as something else. Here a number is a JSON number, a member name matches exactly,
    /// duplicates and unknown members are refused, and strings follow <see cref="TextInput"/>.
    /// </summary>
    public static void ConfigureJson(JsonSerializerOptions json)
    {
        json.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
        json.DictionaryKeyPolicy = JsonNamingPolicy.SnakeCaseLower;
        json.PropertyNameCaseInsensitive = false;
        json.NumberHandling = JsonNumberHandling.Strict;
        json.AllowDuplicateProperties = false;
        json.UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow;
        json.RespectNullableAnnotations = true;
        json.RespectRequiredConstructorParameters = true;
        json.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower));
        json.Converters.Add(new TextInputJsonConverter());
    }

    private static void UseLimenPipeline(this WebApplication app, LimenOptions options)
    {
        if (options.TrustedProxies.Length > 0)
        {
            app.UseForwardedHeaders();
        }

        app.UseRequestIdHeader();
        app.UseUiHeaders();
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseMiddleware<QueryTextMiddleware>();
        app.UseWebSockets();
        app.UseRouting();
        app.UseMiddleware<HttpMetricsMiddleware>();
        app.UseAuthentication();
        app.UseAuthorization();
        app.Use(BrowserSession.RequireAntiforgeryForCookieApiCalls);
        app.UseAntiforgery();
        app.Use(BrowserSession.RequireAntiforgeryForForms);
    }

    private static void MapLimenEndpoints(this WebApplication app)
    {
        // Signed-in users only, unless an endpoint says AllowAnonymous. Not a fallback policy: that
        // would answer unknown paths and 415s with 401 instead of 404/415.
        var api = app.MapGroup("").RequireAuthorization();
        api.MapHealth();
        api.MapMetrics();
        api.MapAuth();
        api.MapUsers();
        api.MapHosts();
        api.MapRegistration();
        api.MapSettings();
        api.MapAudit();
        api.MapAgentProxy();
        api.MapAlerts();
        api.MapImages();
        api.MapBackups();
        api.MapVms();
        api.MapMigration();
        api.MapQuotas();
        api.MapSnapshots();
        api.MapConsole();
        api.MapEvents();
        app.MapUi();
        app.MapOpenApi("/api/openapi/{documentName}.json").AllowAnonymous();
        app.MapScalarApiReference("/api/docs", scalar => scalar.WithOpenApiRoutePattern("/api/openapi/{documentName}.json")).AllowAnonymous();
    }

    /// <summary>
    /// Fail fast when PostgreSQL is gone, so health and requests answer 503 within seconds; prepare
    /// the statements that repeat.
    /// </summary>
    private static string WithDefaults(string connectionString, string applicationName)
    {
        // Always ours, even over a configured one: restore's "is serve running?" check relies on it.
        var builder = new NpgsqlConnectionStringBuilder(connectionString) { ApplicationName = applicationName };
        if (!connectionString.Contains("Timeout", StringComparison.OrdinalIgnoreCase))
        {
            builder.Timeout = 5;
        }

        // Requests run the same few statements over and over: prepared on each pooled connection
        // after their second use, PostgreSQL no longer parses and plans them every time.
        if (!connectionString.Contains("Auto Prepare", StringComparison.OrdinalIgnoreCase))
        {
            builder.MaxAutoPrepare = 64;
            builder.AutoPrepareMinUsages = 2;
        }

        return builder.ConnectionString;
    }
}
