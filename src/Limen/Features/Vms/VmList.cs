using System.Security.Claims;
using Limen.Data;
using Limen.Features.Outcomes;
using Limen.Web;
using Microsoft.EntityFrameworkCore;

namespace Limen.Features.Vms;

/// <summary>
/// What a VM list asks for (the API's <c>GET /api/vms</c>: an owner, admins only; the UI's /vms also a
/// name search, one state and a sort key, <see cref="VmSorts"/>, "-" before it sorts descending).
/// </summary>
public sealed record VmListFilter(Guid? OwnerId = null, string? Search = null, string? State = null, string? Sort = null);

public static class VmSorts
{
    public const int MaxSearchLength = 100;

    public static readonly IReadOnlyList<string> Keys = ["created", "name", "state", "vcpus", "memory", "disk"];

    public static bool IsKnown(string sort) => Keys.Contains(sort.StartsWith('-') ? sort[1..] : sort);
}

public sealed partial class VmService
{
    /// <summary>
    /// One page of the VMs the caller may see (own; admins all, or one owner's), filtered, sorted and
    /// paged by PostgreSQL, with the total that matches the filter.
    /// </summary>
    public async Task<Outcome<PagedList<Vm>>> ListAsync(VmListFilter filter, PageRequest page, ClaimsPrincipal caller, CancellationToken cancellationToken)
    {
        if (page.Validate() is { } paging)
        {
            return new Invalid(paging.Field, paging.Detail);
        }

        if (filter.Search is { Length: > VmSorts.MaxSearchLength })
        {
            return new Invalid("q", $"q must be at most {VmSorts.MaxSearchLength} characters.");
        }

        if (filter.Search is { } search && TextInput.Problem(search) is { } text)
        {
            return new Invalid("q", "q " + text);
        }

        if (filter.State is { } wanted && !VmStates.All.Contains(wanted))
        {
            return new Invalid("state", $"state must be one of: {string.Join(", ", VmStates.All)}.");
        }

        if (filter.Sort is { } sortKey && !VmSorts.IsKnown(sortKey))
        {
            return new Invalid("sort", $"sort must be one of: {string.Join(", ", VmSorts.Keys)} (a leading '-' sorts descending).");
        }

        var vms = db.Vms.AsNoTracking();
        var counts = db.VmCounts.AsNoTracking();
        var owner = caller.IsAdmin() ? filter.OwnerId : caller.GetUserId();
        if (owner is { } ownerId)
        {
            vms = vms.Where(v => v.OwnerId == ownerId);
            counts = counts.Where(c => c.OwnerId == ownerId);
        }

        var filtered = !string.IsNullOrEmpty(filter.Search) || filter.State is not null;
        if (!string.IsNullOrEmpty(filter.Search))
        {
            var pattern = "%" + filter.Search.Replace("\\", "\\\\").Replace("%", "\\%").Replace("_", "\\_") + "%";
            vms = vms.Where(v => EF.Functions.ILike(v.Name, pattern, "\\"));
        }

        if (filter.State is { } state)
        {
            vms = vms.Where(v => v.State == state);
        }

        // The page and the total in one round trip. Unfiltered, the total is a sum over the owners'
        // counts (vm_counts, kept by triggers), not a count of every VM on every request; the default
        // order (created_at, id) has an index of its own (owner_id first for an owner's list).
        var window = Sorted(vms, filter.Sort).Skip(page.Skip).Take(page.Size);
        var rows = filtered
            ? await window.Select(v => new Row(v, vms.Count())).ToListAsync(cancellationToken)
            : await window.Select(v => new Row(v, counts.Sum(c => c.Vms))).ToListAsync(cancellationToken);
        // Past the last page no row carries the total.
        var total = rows.Count > 0 ? rows[0].Total
            : page.Skip == 0 ? 0
            : filtered ? await vms.CountAsync(cancellationToken) : await counts.SumAsync(c => c.Vms, cancellationToken);
        return new PagedList<Vm>(rows.ConvertAll(r => r.Vm), total, page.Number, page.Size);
    }

    /// <summary>How many of one owner's VMs are in each state (states with none are absent).</summary>
    public async Task<IReadOnlyDictionary<string, int>> CountByStateAsync(Guid ownerId, CancellationToken cancellationToken) =>
        await db.Vms.AsNoTracking().Where(v => v.OwnerId == ownerId).GroupBy(v => v.State)
            .Select(g => new { State = g.Key, Count = g.Count() })
            .ToDictionaryAsync(g => g.State, g => g.Count, cancellationToken);

    private sealed record Row(Vm Vm, int Total);

    /// <summary>Every order ends in the id, so pages never overlap or skip a row between equal keys.</summary>
    private static IQueryable<Vm> Sorted(IQueryable<Vm> vms, string? sort)
    {
        var descending = sort?.StartsWith('-') == true;
        return (descending ? sort![1..] : sort) switch
        {
            "name" => descending ? vms.OrderByDescending(v => v.Name).ThenByDescending(v => v.Id) : vms.OrderBy(v => v.Name).ThenBy(v => v.Id),
            "state" => descending ? vms.OrderByDescending(v => v.State).ThenByDescending(v => v.Id) : vms.OrderBy(v => v.State).ThenBy(v => v.Id),
            "vcpus" => descending ? vms.OrderByDescending(v => v.Vcpus).ThenByDescending(v => v.Id) : vms.OrderBy(v => v.Vcpus).ThenBy(v => v.Id),
            "memory" => descending ? vms.OrderByDescending(v => v.MemoryMb).ThenByDescending(v => v.Id) : vms.OrderBy(v => v.MemoryMb).ThenBy(v => v.Id),
            "disk" => descending ? vms.OrderByDescending(v => v.DiskGb).ThenByDescending(v => v.Id) : vms.OrderBy(v => v.DiskGb).ThenBy(v => v.Id),
            _ => descending ? vms.OrderByDescending(v => v.CreatedAt).ThenByDescending(v => v.Id) : vms.OrderBy(v => v.CreatedAt).ThenBy(v => v.Id),
        };
    }
}
