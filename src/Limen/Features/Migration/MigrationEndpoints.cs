using Limen.Features.Vms;
using Limen.Web;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Net.Http.Headers;

namespace Limen.Features.Migration;

/// <summary>Migration and drain: admins only (a user gets 403, and never sees where hosts are).</summary>
public static class MigrationEndpoints
{
    public static IEndpointRouteBuilder MapMigration(this IEndpointRouteBuilder routes)
    {
        var vms = routes.MapGroup("/api/vms").WithTags("VMs").RequireAuthorization(Policies.Admin);
        // A literal segment: routing prefers it to /actions/{action}.
        vms.MapPost("/{id:guid}/actions/migrate", Migrate);
        vms.MapGet("/{id:guid}/migrations", async (Guid id, MigrationService service, CancellationToken ct) =>
            (await service.HistoryAsync(id, ct)).ToResult(TypedResults.Ok));
        routes.MapPost("/api/admin/hosts/{id:guid}/drain", async (Guid id, HostDrain drain, CancellationToken ct) =>
            (await drain.DrainAsync(id, ct)).ToResult(TypedResults.Ok))
            .WithTags("Hosts").RequireAuthorization(Policies.Admin);
        return routes;
    }

    /// <summary>The body is optional (no target: placement chooses); when there is one it must be JSON.</summary>
    private static async Task<Results<Ok<VmResponse>, ProblemHttpResult>> Migrate(Guid id, HttpRequest http, MigrationService service, CancellationToken ct)
    {
        MigrateVmRequest? request = null;
        // No body at all (no length, not chunked) is the same as an empty one, whatever its Content-Type says.
        var hasBody = http.ContentLength > 0 || (http.ContentLength is null && http.Headers.ContainsKey(HeaderNames.TransferEncoding));
        if (hasBody && !http.HasJsonContentType())
        {
            return Problems.Invalid("body", "Send the body as application/json, or none.");
        }

        if (hasBody)
        {
            try
            {
                request = await http.ReadFromJsonAsync<MigrateVmRequest>(ct);
            }
            catch (System.Text.Json.JsonException)
            {
                return Problems.Invalid("target_host_id", "The body must be {\"target_host_id\": \"<host id>\"} or empty.");
            }
        }

        return (await service.MigrateAsync(id, request?.TargetHostId, ct)).ToResult(TypedResults.Ok);
    }

    public static IServiceCollection AddMigration(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<MigrationOptions>().Bind(configuration.GetSection(MigrationOptions.Section)).ValidateDataAnnotations().ValidateOnStart();
        services.AddScoped<MigrationSettlement>();
        services.AddScoped<MigrationService>();
        services.AddScoped<HostDrain>();
        return services;
    }
}
