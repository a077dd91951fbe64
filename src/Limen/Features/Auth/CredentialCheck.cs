using Limen.Data;
using Limen.Features.Audit;
using Limen.Features.Metrics;
using Limen.Features.Users;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;

namespace Limen.Features.Auth;

/// <summary>What a sign-in attempt came to: the user, or why not (an <see cref="AuthFailureReasons"/> value).</summary>
public sealed record CredentialOutcome(User? User, string? Failure, TimeSpan? RetryAfter = null)
{
    public bool Succeeded => User is not null;
}

/// <summary>
/// The one check of a username and password, for the API's token login and the browser's session
/// sign-in alike: throttled per client and per account, the same hashing work for unknown users,
/// counted and audited (auth.login) whatever the result.
/// </summary>
public sealed class CredentialCheck(
    LimenDbContext db, LoginThrottle throttle, IPasswordHasher<User> hasher, LimenMetrics metrics, AuditTrail audit)
{
    public async Task<CredentialOutcome> CheckAsync(string username, string password, string clientIp, CancellationToken cancellationToken)
    {
        username = username.Trim().ToLowerInvariant();
        // Usernames that cannot exist are not looked up, but are answered exactly like wrong passwords.
        var auditName = AccountRules.UsernameProblem(username) is null ? username : null;

        if (throttle.TryAdmit(clientIp, username) is { } retryAfter)
        {
            metrics.AuthFailures.WithLabels(AuthFailureReasons.RateLimited).Inc();
            await audit.RecordAsync(new AuditEvent("auth.login", AuditResults.Denied, "user", auditName,
                ErrorCode: AuthFailureReasons.RateLimited, Username: auditName), cancellationToken);
            return new CredentialOutcome(null, AuthFailureReasons.RateLimited, retryAfter);
        }

        var user = auditName is null ? null : await db.Users.FirstOrDefaultAsync(u => u.Username == username, cancellationToken);
        var verdict = PasswordVerifier.Verify(hasher, user, password);
        var failure = verdict == PasswordVerificationResult.Failed ? AuthFailureReasons.InvalidCredentials
            : user!.Disabled ? AuthFailureReasons.Disabled
            // Only after the password proved right: nobody learns that an account waits for approval without it.
            : user.Pending ? AuthFailureReasons.Pending
            : null;
        if (failure is not null)
        {
            metrics.AuthFailures.WithLabels(failure).Inc();
            await audit.RecordAsync(new AuditEvent("auth.login", AuditResults.Failure, "user", user?.Id.ToString() ?? auditName,
                ErrorCode: failure, UserId: user?.Id, Username: auditName), cancellationToken);
            return new CredentialOutcome(null, failure);
        }

        if (verdict == PasswordVerificationResult.SuccessRehashNeeded)
        {
            user!.PasswordHash = hasher.HashPassword(user, password);
            await db.SaveChangesAsync(cancellationToken);
        }

        await audit.RecordAsync(new AuditEvent("auth.login", AuditResults.Success, "user", user!.Id.ToString(),
            UserId: user.Id, Username: user.Username), cancellationToken);
        return new CredentialOutcome(user, null);
    }
}
