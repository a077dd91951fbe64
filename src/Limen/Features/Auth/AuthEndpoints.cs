using Limen.Data;
using Limen.Features.Audit;
using Limen.Features.Metrics;
using Limen.Features.Registration;
using Limen.Features.Users;
using Limen.Web;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;

namespace Limen.Features.Auth;

public sealed record LoginRequest(string Username, string Password);

public sealed record TokenResponse(string AccessToken, int ExpiresIn, string TokenType);

public sealed record MeResponse(Guid Id, string Username, string Role);

public sealed record ChangePasswordRequest(string CurrentPassword, string NewPassword);

public static class AuthEndpoints
{
    public const string RefreshCookie = "limen_refresh";

    public static IEndpointRouteBuilder MapAuth(this IEndpointRouteBuilder routes)
    {
        var auth = routes.MapGroup("/api/auth").WithTags("Auth");
        auth.MapPost("/login", Login).AllowAnonymous();
        auth.MapPost("/refresh", Refresh).AllowAnonymous();
        auth.MapPost("/logout", Logout).AllowAnonymous();
        auth.MapGet("/me", Me);
        auth.MapPost("/me/password", ChangePassword);
        return routes;
    }

    private static async Task<Results<Ok<TokenResponse>, ProblemHttpResult>> Login(
        LoginRequest request, HttpContext http, CredentialCheck credentials, AccessTokens accessTokens, RefreshTokens refreshTokens,
        CancellationToken cancellationToken)
    {
        var clientIp = http.Connection.RemoteIpAddress?.ToString() ?? "unknown";
        var outcome = await credentials.CheckAsync(request.Username, request.Password, clientIp, cancellationToken);
        if (outcome.RetryAfter is { } retryAfter)
        {
            Problems.SetRetryAfter(http.Response, retryAfter);
            return Problems.Create(429, Problems.RateLimited, "Too many login attempts",
                "Too many login attempts from this client or for this account; wait and try again.");
        }

        if (outcome.Failure == AuthFailureReasons.Pending)
        {
            return Problems.Create(403, Problems.PendingApproval, "Pending approval", Registrations.PendingMessage);
        }

        if (outcome.User is not { } user)
        {
            return Problems.Unauthenticated("Invalid username or password.");
        }

        var refresh = await refreshTokens.IssueAsync(user.Id, familyId: null, cancellationToken);
        SetRefreshCookie(http, refresh, refreshTokens.Lifetime);
        return TypedResults.Ok(new TokenResponse(accessTokens.Issue(user), accessTokens.LifetimeSeconds, "Bearer"));
    }

    private static async Task<Results<Ok<TokenResponse>, ProblemHttpResult>> Refresh(
        HttpContext http, LimenDbContext db, AccessTokens accessTokens, RefreshTokens refreshTokens,
        LimenMetrics metrics, AuditTrail audit, CancellationToken cancellationToken)
    {
        if (!http.Request.Cookies.TryGetValue(RefreshCookie, out var secret) || string.IsNullOrEmpty(secret))
        {
            return Problems.Unauthenticated("No refresh token.");
        }

        var (outcome, userId, fresh) = await refreshTokens.RotateAsync(secret, cancellationToken);
        var user = outcome == RefreshOutcome.Rotated ? await db.Users.AsNoTracking().FirstOrDefaultAsync(u => u.Id == userId, cancellationToken) : null;
        if (user is null || user.Disabled)
        {
            var reason = outcome == RefreshOutcome.Reused ? AuthFailureReasons.RefreshTokenReuse : AuthFailureReasons.InvalidRefreshToken;
            metrics.AuthFailures.WithLabels(reason).Inc();
            await audit.RecordAsync(new AuditEvent("auth.refresh", AuditResults.Failure, "user",
                userId == Guid.Empty ? null : userId.ToString(), ErrorCode: reason, UserId: userId == Guid.Empty ? null : userId), cancellationToken);
            http.Response.Cookies.Delete(RefreshCookie, CookieOptions(http));
            return Problems.Unauthenticated(outcome == RefreshOutcome.Reused
                ? "This refresh token was already used; every session of its family has been revoked."
                : "The refresh token is invalid or expired.");
        }

        SetRefreshCookie(http, fresh!, refreshTokens.Lifetime);
        await audit.RecordAsync(new AuditEvent("auth.refresh", AuditResults.Success, "user", user.Id.ToString(),
            UserId: user.Id, Username: user.Username), cancellationToken);
        return TypedResults.Ok(new TokenResponse(accessTokens.Issue(user), accessTokens.LifetimeSeconds, "Bearer"));
    }

    private static async Task<NoContent> Logout(HttpContext http, RefreshTokens refreshTokens, AuditTrail audit, CancellationToken cancellationToken)
    {
        Guid? userId = null;
        if (http.Request.Cookies.TryGetValue(RefreshCookie, out var secret) && !string.IsNullOrEmpty(secret))
        {
            userId = await refreshTokens.RevokeBySecretAsync(secret, cancellationToken);
        }

        http.Response.Cookies.Delete(RefreshCookie, CookieOptions(http));
        // A real session names its user; a logout without one is anonymous (and budgeted as such).
        await audit.RecordAsync(new AuditEvent("auth.logout", AuditResults.Success, UserId: userId), cancellationToken);
        return TypedResults.NoContent();
    }

    private static async Task<Results<Ok<MeResponse>, ProblemHttpResult>> Me(HttpContext http, LimenDbContext db, CancellationToken cancellationToken)
    {
        var id = http.User.GetUserId();
        var user = await db.Users.AsNoTracking().FirstOrDefaultAsync(u => u.Id == id, cancellationToken);
        return user is null
            ? Problems.Unauthenticated("The account no longer exists.")
            : TypedResults.Ok(new MeResponse(user.Id, user.Username, user.Role));
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> ChangePassword(
        ChangePasswordRequest request, HttpContext http, LimenDbContext db, IPasswordHasher<User> hasher,
        RefreshTokens refreshTokens, AuditTrail audit, TimeProvider clock, CancellationToken cancellationToken)
    {
        var id = http.User.GetUserId();
        var user = await db.Users.FirstAsync(u => u.Id == id, cancellationToken);
        if (PasswordVerifier.Verify(hasher, user, request.CurrentPassword) == PasswordVerificationResult.Failed)
        {
            await audit.RecordAsync(new AuditEvent("user.password.change", AuditResults.Failure, "user", id.ToString(),
                ErrorCode: "wrong_current_password"), cancellationToken);
            return Problems.Create(403, Problems.Forbidden, "Wrong password", "The current password is not correct.");
        }

        if (AccountRules.PasswordProblem(request.NewPassword) is { } problem)
        {
            return Problems.Invalid("new_password", problem);
        }

        user.PasswordHash = hasher.HashPassword(user, request.NewPassword);
        user.UpdatedAt = clock.GetUtcNow();
        await db.SaveChangesAsync(cancellationToken);
        // Other sessions end with the old password.
        await refreshTokens.RevokeAllForUserAsync(id, cancellationToken);
        await audit.RecordAsync(new AuditEvent("user.password.change", AuditResults.Success, "user", id.ToString()), cancellationToken);
        return TypedResults.NoContent();
    }

    private static void SetRefreshCookie(HttpContext http, string secret, TimeSpan lifetime) =>
        http.Response.Cookies.Append(RefreshCookie, secret, CookieOptions(http, lifetime));

    /// <param name="maxAge">How long the browser keeps it; none when the cookie is being deleted.</param>
    private static CookieOptions CookieOptions(HttpContext http, TimeSpan? maxAge = null) => new()
    {
        HttpOnly = true,
        SameSite = SameSiteMode.Strict,
        Secure = http.Request.IsHttps,
        Path = "/api/auth",
        MaxAge = maxAge,
    };
}

/// <summary>Verifies a password, spending the same hashing work when the user does not exist.</summary>
public static class PasswordVerifier
{
    private static readonly User Nobody = new() { Username = "nobody", PasswordHash = "", Role = Roles.User };
    private static readonly Lazy<string> DecoyHash = new(() => new PasswordHasher<User>().HashPassword(Nobody, Guid.NewGuid().ToString()));

    public static PasswordVerificationResult Verify(IPasswordHasher<User> hasher, User? user, string password)
    {
        if (user is null)
        {
            hasher.VerifyHashedPassword(Nobody, DecoyHash.Value, password);
            return PasswordVerificationResult.Failed;
        }

        return hasher.VerifyHashedPassword(user, user.PasswordHash, password);
    }
}
