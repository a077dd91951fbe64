using Limen.Web;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Limen.Features.Hosts;

public static class HostEndpoints
{
    public static IEndpointRouteBuilder MapHosts(this IEndpointRouteBuilder routes)
    {
        var admin = routes.MapGroup("/api/admin/hosts").WithTags("Hosts").RequireAuthorization(Policies.Admin);
        admin.MapGet("/", List);
        admin.MapPost("/", Add);
        admin.MapGet("/{id:guid}", Get);
        admin.MapPost("/{id:guid}/maintenance", (Guid id, HostAdmin hosts, CancellationToken ct) => SetMode(id, HostMode.Maintenance, hosts, ct));
        admin.MapPost("/{id:guid}/activate", (Guid id, HostAdmin hosts, CancellationToken ct) => SetMode(id, HostMode.Active, hosts, ct));
        admin.MapDelete("/{id:guid}", Remove);
        return routes;
    }

    private static async Task<Ok<IReadOnlyList<HostView>>> List(HostAdmin hosts, CancellationToken cancellationToken) =>
        TypedResults.Ok(await hosts.ListAsync(cancellationToken));

    private static async Task<Results<Created<HostView>, ProblemHttpResult>> Add(AddHostRequest request, HostAdmin hosts, CancellationToken cancellationToken) =>
        (await hosts.AddAsync(request, cancellationToken)).ToResult(host => TypedResults.Created($"/api/admin/hosts/{host.Id}", host));

    private static async Task<Results<Ok<HostView>, ProblemHttpResult>> Get(Guid id, HostAdmin hosts, CancellationToken cancellationToken) =>
        (await hosts.GetAsync(id, cancellationToken)).ToResult(TypedResults.Ok);

    private static async Task<Results<Ok<HostView>, ProblemHttpResult>> SetMode(Guid id, HostMode mode, HostAdmin hosts, CancellationToken cancellationToken) =>
        (await hosts.SetModeAsync(id, mode, cancellationToken)).ToResult(TypedResults.Ok);

    private static async Task<Results<NoContent, ProblemHttpResult>> Remove(Guid id, HostAdmin hosts, CancellationToken cancellationToken) =>
        (await hosts.RemoveAsync(id, cancellationToken)).ToNoContent();
}
