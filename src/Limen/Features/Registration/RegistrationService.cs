using Limen.Data;
using Limen.Features.Audit;
using Limen.Features.Auth;
using Limen.Features.Events;
using Limen.Features.Outcomes;
using Limen.Features.Settings;
using Limen.Features.Users;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;

namespace Limen.Features.Registration;

public static class Registrations
{
    public const string PendingStatus = "pending";

    /// <summary>What a pending account hears when it signs in with the right password (API and sign-in page alike).</summary>
    public const string PendingMessage = "This account awaits an administrator's approval. You can sign in once it has been approved.";
}

/// <summary>An account that registered itself and waits for an admin.</summary>
public sealed record RegistrationView(Guid Id, string Username, string Status, DateTimeOffset CreatedAt)
{
    public static RegistrationView From(User user) => new(user.Id, user.Username, Registrations.PendingStatus, user.CreatedAt);
}

/// <summary>
/// Self-registration with admin approval. While <see cref="SettingsService.RegistrationOpenAsync"/>
/// says so, anybody may create an account (always role user) that is pending: it cannot sign in
/// (<see cref="CredentialCheck"/>) until an admin approves it, and a rejected one is deleted.
/// Attempts take from the client's login budget (<see cref="LoginThrottle"/>): each one hashes a password.
/// </summary>
public sealed class RegistrationService(
    LimenDbContext db,
    SettingsService settings,
    LoginThrottle throttle,
    IPasswordHasher<User> hasher,
    AuditTrail audit,
    EventOutlet events,
    TimeProvider clock)
{
    private const string RegisterAction = "user.register";

    public async Task<Outcome<RegistrationView>> RegisterAsync(string username, string password, string clientIp, CancellationToken cancellationToken)
    {
        if (throttle.TryAdmitClient(clientIp) is { } retryAfter)
        {
            await audit.RecordAsync(new AuditEvent(RegisterAction, AuditResults.Denied, "user", null, "rate_limited"), cancellationToken);
            return new Throttled(retryAfter);
        }

        if (!await settings.RegistrationOpenAsync(cancellationToken))
        {
            await audit.RecordAsync(new AuditEvent(RegisterAction, AuditResults.Denied, "user", null, "registration_closed"), cancellationToken);
            return new RegistrationClosed();
        }

        Invalid? invalid = AccountRules.UsernameProblem(username) is { } u ? new Invalid("username", u)
            : AccountRules.PasswordProblem(password) is { } p ? new Invalid("password", p)
            : null;
        if (invalid is not null)
        {
            await audit.RecordAsync(new AuditEvent(RegisterAction, AuditResults.Failure, "user", null, "validation"), cancellationToken);
            return invalid;
        }

        var now = clock.GetUtcNow();
        var user = new User
        {
            Id = Guid.NewGuid(), Username = username, PasswordHash = "", Role = Roles.User, Pending = true, CreatedAt = now, UpdatedAt = now,
        };
        user.PasswordHash = hasher.HashPassword(user, password);
        db.Users.Add(user);
        events.Stage(db, new EventDraft(EventTypes.RegistrationCreated, null, null, new { user_id = user.Id, username }));
        try
        {
            await db.SaveChangesAsync(cancellationToken);
        }
        catch (DbUpdateException e) when (e.IsUniqueViolation())
        {
            await audit.RecordAsync(new AuditEvent(RegisterAction, AuditResults.Failure, "user", null, "username_taken",
                new { username }), cancellationToken);
            return new Conflict($"The username '{username}' is taken.");
        }

        // Names the new account, so the row is written whatever the anonymous budget says (as for a
        // failed login of an existing account): an account that exists always has its audit row.
        await audit.RecordAsync(new AuditEvent(RegisterAction, AuditResults.Success, "user", user.Id.ToString(),
            UserId: user.Id, Username: user.Username), cancellationToken);
        return RegistrationView.From(user);
    }

    /// <summary>The accounts waiting for approval, oldest first, and how many there are.</summary>
    public async Task<(IReadOnlyList<RegistrationView> Items, int Total)> PendingAsync(int skip, int take, CancellationToken cancellationToken)
    {
        var pending = db.Users.AsNoTracking().Where(u => u.Pending);
        var total = await pending.CountAsync(cancellationToken);
        var users = await pending.OrderBy(u => u.CreatedAt).ThenBy(u => u.Id).Skip(skip).Take(take).ToListAsync(cancellationToken);
        return (users.ConvertAll(RegistrationView.From), total);
    }

    /// <summary>Makes the pending account a normal one: it can sign in from now on.</summary>
    public async Task<Outcome<UserResponse>> ApproveAsync(Guid id, CancellationToken cancellationToken)
    {
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        if (await LockPendingAsync(id, cancellationToken) is not { } user)
        {
            return new NotFound("The registration");
        }

        user.Pending = false;
        user.UpdatedAt = clock.GetUtcNow();
        events.Stage(db, new EventDraft(EventTypes.RegistrationApproved, null, null, new { user_id = user.Id, username = user.Username }));
        await db.SaveChangesAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        await audit.RecordAsync(new AuditEvent("user.approve", AuditResults.Success, "user", id.ToString(),
            Details: new { username = user.Username }), cancellationToken);
        return UserResponse.From(user);
    }

    /// <summary>Deletes the pending account; its name is free again.</summary>
    public async Task<Failure?> RejectAsync(Guid id, CancellationToken cancellationToken)
    {
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        if (await LockPendingAsync(id, cancellationToken) is not { } user)
        {
            return new NotFound("The registration");
        }

        db.Users.Remove(user);
        events.Stage(db, new EventDraft(EventTypes.RegistrationRejected, null, null, new { user_id = user.Id, username = user.Username }));
        await db.SaveChangesAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        await audit.RecordAsync(new AuditEvent("user.reject", AuditResults.Success, "user", id.ToString(),
            Details: new { username = user.Username }), cancellationToken);
        return null;
    }

    /// <summary>
    /// The account if it is (still) pending, locked to the end of the transaction: of two admins
    /// deciding at once, the second finds it decided and gets a 404, never a second approval.
    /// </summary>
    private Task<User?> LockPendingAsync(Guid id, CancellationToken cancellationToken) =>
        db.Users.FromSqlInterpolated($"SELECT * FROM users WHERE id = {id} AND pending FOR UPDATE").FirstOrDefaultAsync(cancellationToken);
}
