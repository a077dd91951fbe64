using Limen.Features.Outcomes;
using Limen.Web;

namespace Limen.Ui.Pages.Admin;

/// <summary>What the admin pages answer with when a form or a filter is refused.</summary>
public static class AdminText
{
    /// <summary>The HTTP status the API gives the same failure, for the page's response.</summary>
    public static int Status(this Failure failure) => failure.ToProblem().StatusCode;
}
