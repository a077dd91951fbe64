using System.Security.Claims;
using Limen.Data;

namespace Limen.Web;

/// <summary>Reads the caller from the validated access token's claims (sub, name, role).</summary>
public static class CurrentUser
{
    public const string IdClaim = "sub";
    public const string NameClaim = "name";
    public const string RoleClaim = "role";

    public static Guid? FindUserId(this ClaimsPrincipal principal) =>
        Guid.TryParse(principal.FindFirst(IdClaim)?.Value, out var id) ? id : null;

    public static Guid GetUserId(this ClaimsPrincipal principal) =>
        principal.FindUserId() ?? throw new InvalidOperationException("The endpoint requires an authenticated user.");

    public static string? FindUsername(this ClaimsPrincipal principal) => principal.FindFirst(NameClaim)?.Value;

    public static bool IsAdmin(this ClaimsPrincipal principal) => principal.IsInRole(Roles.Admin);
}
