using Limen.Web;

namespace Limen.Features.Snapshots;

public static class SnapshotEndpoints
{
    public static IEndpointRouteBuilder MapSnapshots(this IEndpointRouteBuilder routes)
    {
        var snapshots = routes.MapGroup("/api/vms/{id:guid}/snapshots").WithTags("Snapshots");
        snapshots.MapGet("/", async (Guid id, HttpContext http, SnapshotService service, CancellationToken ct) =>
            (await service.ListAsync(id, http.User, ct)).ToResult(TypedResults.Ok));
        snapshots.MapPost("/", async (Guid id, CreateSnapshotRequest request, HttpContext http, SnapshotService service, CancellationToken ct) =>
            (await service.CreateAsync(id, request, http.User, ct)).ToResult(s => TypedResults.Created($"/api/vms/{s.VmId}/snapshots/{s.Id}", s)));
        snapshots.MapGet("/{sid:guid}", async (Guid id, Guid sid, HttpContext http, SnapshotService service, CancellationToken ct) =>
            (await service.GetAsync(id, sid, http.User, ct)).ToResult(TypedResults.Ok));
        snapshots.MapPost("/{sid:guid}/revert", async (Guid id, Guid sid, HttpContext http, SnapshotService service, CancellationToken ct) =>
            (await service.RevertAsync(id, sid, http.User, ct)).ToResult(TypedResults.Ok));
        snapshots.MapDelete("/{sid:guid}", async (Guid id, Guid sid, HttpContext http, SnapshotService service, CancellationToken ct) =>
            (await service.DeleteAsync(id, sid, http.User, ct)).ToNoContent());
        return routes;
    }
}
