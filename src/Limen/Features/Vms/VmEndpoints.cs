using Limen.Data;
using Limen.Web;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace Limen.Features.Vms;

public sealed record VmListQuery([property: FromQuery(Name = "owner_id")] Guid? OwnerId);

public static class VmEndpoints
{
    public static IEndpointRouteBuilder MapVms(this IEndpointRouteBuilder routes)
    {
        var vms = routes.MapGroup("/api/vms").WithTags("VMs");
        vms.MapGet("/", List);
        vms.MapPost("/", async (CreateVmRequest request, HttpContext http, VmService service, CancellationToken ct) =>
            (await service.CreateAsync(request, http.User, ct)).ToResult(vm => TypedResults.Created($"/api/vms/{vm.Id}", vm)));
        vms.MapGet("/{id:guid}", Get);
        vms.MapPatch("/{id:guid}", async (Guid id, UpdateVmRequest request, HttpContext http, VmService service, CancellationToken ct) =>
            (await service.UpdateAsync(id, request, http.User, ct)).ToResult(TypedResults.Ok));
        vms.MapDelete("/{id:guid}", async (Guid id, HttpContext http, VmService service, CancellationToken ct) =>
            (await service.DeleteAsync(id, http.User, ct)).ToNoContent());
        vms.MapPost("/{id:guid}/actions/{action}", Act);
        vms.MapPut("/{id:guid}/cdrom", async (Guid id, AttachCdromRequest request, HttpContext http, VmService service, CancellationToken ct) =>
            (await service.ConfigureBootAsync(id, request.ImageId, detach: false, bootOrder: null, http.User, ct)).ToResult(TypedResults.Ok));
        vms.MapDelete("/{id:guid}/cdrom", async (Guid id, HttpContext http, VmService service, CancellationToken ct) =>
            (await service.ConfigureBootAsync(id, null, detach: true, bootOrder: null, http.User, ct)).ToResult(TypedResults.Ok));
        vms.MapPut("/{id:guid}/boot-order", async (Guid id, BootOrderRequest request, HttpContext http, VmService service, CancellationToken ct) =>
            (await service.ConfigureBootAsync(id, null, detach: false, request.Devices, http.User, ct)).ToResult(TypedResults.Ok));
        vms.MapGet("/{id:guid}/stats", Stats);
        return routes;
    }

    /// <summary>Own VMs; admins see all and may filter by owner.</summary>
    private static async Task<Results<Ok<PagedList<VmResponse>>, ProblemHttpResult>> List(
        [AsParameters] VmListQuery query, [AsParameters] PageRequest page, HttpContext http, LimenDbContext db, CancellationToken cancellationToken)
    {
        if (page.Validate() is { } problem)
        {
            return Problems.Invalid(problem.Field, problem.Detail);
        }

        var vms = db.Vms.AsNoTracking();
        var counts = db.VmCounts.AsNoTracking();
        var owner = http.User.IsAdmin() ? query.OwnerId : http.User.GetUserId();
        if (owner is { } ownerId)
        {
            vms = vms.Where(v => v.OwnerId == ownerId);
            counts = counts.Where(c => c.OwnerId == ownerId);
        }

        // The page and the total in one round trip. The order has an index of its own (created_at, id;
        // owner_id first for an owner's list), and the total is a sum over the owners' counts
        // (vm_counts, kept by triggers), not a count of every VM on every request.
        var rows = await vms.OrderBy(v => v.CreatedAt).ThenBy(v => v.Id).Skip(page.Skip).Take(page.Size)
            .Select(v => new { Vm = v, Total = counts.Sum(c => c.Vms) })
            .ToListAsync(cancellationToken);
        // Past the last page no row carries the total.
        var total = rows.Count > 0 ? rows[0].Total : page.Skip == 0 ? 0 : await counts.SumAsync(c => c.Vms, cancellationToken);
        return TypedResults.Ok(new PagedList<VmResponse>(rows.ConvertAll(r => VmResponse.From(r.Vm)), total, page.Number, page.Size));
    }

    private static async Task<Results<Ok<VmResponse>, ProblemHttpResult>> Get(Guid id, HttpContext http, VmService service, CancellationToken cancellationToken) =>
        await service.FindAsync(id, http.User, cancellationToken) is { } vm ? TypedResults.Ok(VmResponse.From(vm)) : Problems.NotFoundProblem("The VM");

    private static async Task<Results<Ok<VmResponse>, ProblemHttpResult>> Act(
        Guid id, string action, HttpContext http, VmService service, CancellationToken cancellationToken)
    {
        if (!VmActions.TryParse(action, out var parsed))
        {
            return Problems.Invalid("action", $"action must be one of: {string.Join(", ", VmActions.Names)}.");
        }

        return (await service.ActAsync(id, parsed, http.User, cancellationToken)).ToResult(TypedResults.Ok);
    }

    private static async Task<Results<Ok<VmStatsResponse>, ProblemHttpResult>> Stats(
        Guid id, HttpContext http, VmService service, VmStatsSampler sampler, CancellationToken cancellationToken)
    {
        var vm = await service.FindAsync(id, http.User, cancellationToken);
        if (vm is null)
        {
            return Problems.NotFoundProblem("The VM");
        }

        return await sampler.SampleAsync(vm, cancellationToken) is { } stats
            ? TypedResults.Ok(stats)
            : Problems.Create(409, Problems.InvalidState, "No statistics", "The VM's domain does not exist.", new Dictionary<string, object?> { ["state"] = vm.State });
    }
}
