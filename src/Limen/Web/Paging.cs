using Microsoft.AspNetCore.Mvc;

namespace Limen.Web;

/// <summary>?page=&amp;page_size= shared by every list endpoint.</summary>
public sealed record PageRequest(
    [property: FromQuery(Name = "page")] int? Page,
    [property: FromQuery(Name = "page_size")] int? PageSize)
{
    public const int MaxPageSize = 200;

    public int Number => Page ?? 1;
    public int Size => PageSize ?? 50;
    public int Skip => (Number - 1) * Size;

    public string? Validate() =>
        Number < 1 ? "page must be 1 or more."
        : Size is < 1 or > MaxPageSize ? $"page_size must be between 1 and {MaxPageSize}."
        : null;
}

public sealed record PagedList<T>(IReadOnlyList<T> Items, int Total, int Page, int PageSize);
