namespace Limen.Features.Snapshots;

public static class SnapshotEndpoints
{
    public static IEndpointRouteBuilder MapSnapshots(this IEndpointRouteBuilder routes)
    {
        var snapshots = routes.MapGroup("/api/vms/{id:guid}/snapshots").WithTags("Snapshots");
        snapshots.MapGet("/", (Guid id, HttpContext http, SnapshotService service, CancellationToken ct) => service.ListAsync(id, http.User, ct));
        snapshots.MapPost("/", (Guid id, CreateSnapshotRequest request, HttpContext http, SnapshotService service, CancellationToken ct) =>
            service.CreateAsync(id, request, http.User, ct));
        snapshots.MapGet("/{sid:guid}", (Guid id, Guid sid, HttpContext http, SnapshotService service, CancellationToken ct) => service.GetAsync(id, sid, http.User, ct));
        snapshots.MapPost("/{sid:guid}/revert", (Guid id, Guid sid, HttpContext http, SnapshotService service, CancellationToken ct) =>
            service.RevertAsync(id, sid, http.User, ct));
        snapshots.MapDelete("/{sid:guid}", (Guid id, Guid sid, HttpContext http, SnapshotService service, CancellationToken ct) =>
            service.DeleteAsync(id, sid, http.User, ct));
        return routes;
    }
}
