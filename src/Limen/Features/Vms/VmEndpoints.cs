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
        [AsParameters] VmListQuery query, [AsParameters] PageRequest page, HttpContext http, VmService service, CancellationToken cancellationToken) =>
        (await service.ListAsync(new VmListFilter(query.OwnerId), page, http.User, cancellationToken))
        .ToResult(list => TypedResults.Ok(new PagedList<VmResponse>(list.Items.Select(VmResponse.From).ToList(), list.Total, list.Page, list.PageSize)));

    private static async Task<Results<Ok<VmResponse>, ProblemHttpResult>> Get(Guid id, HttpContext http, VmService service, CancellationToken cancellationToken) =>
        await service.FindAsync(id, http.User, cancellationToken) is { } vm
            ? TypedResults.Ok(http.User.IsAdmin() ? VmResponse.Detail(vm) : VmResponse.From(vm))
            : Problems.NotFoundProblem("The VM");

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
