using Microsoft.AspNetCore.Mvc;

namespace Limen.Web;

/// <summary>?page=&amp;page_size= shared by every list endpoint.</summary>
public sealed record PageRequest(
    [property: FromQuery(Name = "page")] int? Page,
    [property: FromQuery(Name = "page_size")] int? PageSize)
{
    public const int MaxPageSize = 200;

    /// <summary>Far beyond any real list, and small enough that the offset stays an int: (MaxPage - 1) × MaxPageSize &lt; 2³¹.</summary>
    public const int MaxPage = 1_000_000;

    public int Number => Page ?? 1;
    public int Size => PageSize ?? 50;
    public int Skip => (Number - 1) * Size;

    /// <summary>The problem with the paging parameters, naming the query parameter at fault.</summary>
    public (string Field, string Detail)? Validate() =>
        Number is < 1 or > MaxPage ? ("page", $"page must be between 1 and {MaxPage}.")
        : Size is < 1 or > MaxPageSize ? ("page_size", $"page_size must be between 1 and {MaxPageSize}.")
        : null;
}

public sealed record PagedList<T>(IReadOnlyList<T> Items, int Total, int Page, int PageSize);
