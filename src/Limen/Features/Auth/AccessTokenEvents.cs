using System.Security.Claims;
using Limen.Data;
using Limen.Features.Metrics;
using Limen.Web;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.EntityFrameworkCore;

namespace Limen.Features.Auth;

/// <summary>
/// A valid signature is not enough: the account must still exist and be enabled, and its role is
/// read from the database, so disabling or demoting a user takes effect on the next request.
/// </summary>
public static class AccessTokenEvents
{
    /// <summary>What every authenticated request reads about its caller: compiled once, four columns.</summary>
    private static readonly Func<LimenDbContext, Guid, CancellationToken, Task<Caller?>> FindCaller =
        EF.CompileAsyncQuery((LimenDbContext db, Guid id, CancellationToken _) =>
            db.Users.Where(u => u.Id == id).Select(u => new Caller(u.Id, u.Username, u.Role, u.Disabled)).FirstOrDefault());

    private sealed record Caller(Guid Id, string Username, string Role, bool Disabled);

    public static JwtBearerEvents Create() => new()
    {
        OnAuthenticationFailed = context =>
        {
            // Infrastructure faults (a lost database) are not token failures; they surface as 503.
            if (context.Exception is not Microsoft.IdentityModel.Tokens.SecurityTokenException and not ArgumentException)
            {
                return Task.CompletedTask;
            }

            context.HttpContext.RequestServices.GetRequiredService<LimenMetrics>().AuthFailures.WithLabels(AuthFailureReasons.InvalidToken).Inc();
            return Task.CompletedTask;
        },
        OnTokenValidated = async context =>
        {
            var userId = context.Principal?.FindUserId();
            var dbFactory = context.HttpContext.RequestServices.GetRequiredService<IDbContextFactory<LimenDbContext>>();
            await using var db = await dbFactory.CreateDbContextAsync(context.HttpContext.RequestAborted);
            var user = userId is { } id ? await FindCaller(db, id, context.HttpContext.RequestAborted) : null;
            if (user is null || user.Disabled)
            {
                context.HttpContext.RequestServices.GetRequiredService<LimenMetrics>().AuthFailures.WithLabels(AuthFailureReasons.Disabled).Inc();
                context.Fail("The account is disabled or no longer exists.");
                return;
            }

            context.Principal = new ClaimsPrincipal(new ClaimsIdentity(
                [
                    new Claim(CurrentUser.IdClaim, user.Id.ToString()),
                    new Claim(CurrentUser.NameClaim, user.Username),
                    new Claim(CurrentUser.RoleClaim, user.Role),
                ],
                JwtBearerDefaults.AuthenticationScheme, CurrentUser.NameClaim, CurrentUser.RoleClaim));
        },
    };
}
