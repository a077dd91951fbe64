using Limen.Data;
using Limen.Features.Audit;
using Limen.Features.Auth;
using Limen.Features.Outcomes;
using Limen.Features.RemoteConsole;
using Limen.Web;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;

namespace Limen.Features.Users;

/// <summary>
/// The admins' account management, one implementation for the API (<see cref="UserEndpoints"/>) and
/// the admin pages: every change is validated, audited, and ends what the account may no longer
/// hold (refresh tokens, console sessions).
/// </summary>
public sealed class UserAdmin(
    LimenDbContext db, IPasswordHasher<User> hasher, RefreshTokens refreshTokens, ConsoleSessions consoles, AuditTrail audit, TimeProvider clock)
{
    /// <summary>Users by username, a page at a time; <paramref name="search"/> matches part of the username (case-insensitive).</summary>
    public async Task<Outcome<PagedList<UserResponse>>> ListAsync(string? search, PageRequest page, CancellationToken cancellationToken)
    {
        if (page.Validate() is { } problem)
        {
            return new Invalid(problem.Field, problem.Detail);
        }

        var users = db.Users.AsNoTracking();
        if (!string.IsNullOrWhiteSpace(search))
        {
            // Usernames are lower-case ASCII (AccountRules); LIKE's own wildcards in the search are matched literally.
            var pattern = "%" + search.Trim().ToLowerInvariant().Replace("\\", "\\\\").Replace("%", "\\%").Replace("_", "\\_") + "%";
            users = users.Where(u => EF.Functions.Like(u.Username, pattern, "\\"));
        }

        var total = await users.CountAsync(cancellationToken);
        var items = await users.OrderBy(u => u.Username).Skip(page.Skip).Take(page.Size).ToListAsync(cancellationToken);
        return new PagedList<UserResponse>(items.ConvertAll(UserResponse.From), total, page.Number, page.Size);
    }

    public async Task<Outcome<UserResponse>> GetAsync(Guid id, CancellationToken cancellationToken)
    {
        var user = await db.Users.AsNoTracking().FirstOrDefaultAsync(u => u.Id == id, cancellationToken);
        return user is null ? new NotFound("The user") : UserResponse.From(user);
    }

    /// <summary>The id of the user named <paramref name="username"/>, or null.</summary>
    public Task<Guid?> IdOfAsync(string username, CancellationToken cancellationToken) =>
        db.Users.Where(u => u.Username == username).Select(u => (Guid?)u.Id).FirstOrDefaultAsync(cancellationToken);

    public async Task<Outcome<UserResponse>> CreateAsync(CreateUserRequest request, CancellationToken cancellationToken)
    {
        var role = request.Role ?? Roles.User;
        Failure? invalid = AccountRules.UsernameProblem(request.Username ?? "") is { } u ? new Invalid("username", u)
            : AccountRules.PasswordProblem(request.Password ?? "") is { } p ? new Invalid("password", p)
            : !Roles.IsValid(role) ? new Invalid("role", "role must be 'admin' or 'user'.")
            : null;
        if (invalid is not null)
        {
            await audit.RecordAsync(new AuditEvent("user.create", AuditResults.Failure, "user", null, "validation"), cancellationToken);
            return invalid;
        }

        var now = clock.GetUtcNow();
        var user = new User { Id = Guid.NewGuid(), Username = request.Username!, PasswordHash = "", Role = role, CreatedAt = now, UpdatedAt = now };
        user.PasswordHash = hasher.HashPassword(user, request.Password!);
        db.Users.Add(user);
        try
        {
            await db.SaveChangesAsync(cancellationToken);
        }
        catch (DbUpdateException e) when (e.IsUniqueViolation())
        {
            await audit.RecordAsync(new AuditEvent("user.create", AuditResults.Failure, "user", null, "username_taken",
                new { username = request.Username }), cancellationToken);
            return new Conflict($"The username '{request.Username}' is taken.");
        }

        await audit.RecordAsync(new AuditEvent("user.create", AuditResults.Success, "user", user.Id.ToString(),
            Details: new { username = user.Username, role }), cancellationToken);
        return UserResponse.From(user);
    }

    /// <summary>Changes role and/or disabled; <paramref name="callerId"/> may not demote or disable themself.</summary>
    public async Task<Outcome<UserResponse>> UpdateAsync(Guid callerId, Guid id, UpdateUserRequest request, CancellationToken cancellationToken)
    {
        if (request.Role is { } role && !Roles.IsValid(role))
        {
            return new Invalid("role", "role must be 'admin' or 'user'.");
        }

        var user = await db.Users.FirstOrDefaultAsync(u => u.Id == id, cancellationToken);
        if (user is null)
        {
            return new NotFound("The user");
        }

        // An admin who demotes or disables themself can lock everybody out.
        if (id == callerId && ((request.Role is not null && request.Role != user.Role) || request.Disabled == true))
        {
            await audit.RecordAsync(new AuditEvent("user.update", AuditResults.Failure, "user", id.ToString(), "self_lockout"), cancellationToken);
            return new Conflict("You cannot change your own role or disable your own account.");
        }

        if ((request.Role ?? user.Role) == user.Role && (request.Disabled ?? user.Disabled) == user.Disabled)
        {
            return UserResponse.From(user);
        }

        var before = new { role = user.Role, disabled = user.Disabled };
        user.Role = request.Role ?? user.Role;
        user.Disabled = request.Disabled ?? user.Disabled;
        user.UpdatedAt = clock.GetUtcNow();
        await db.SaveChangesAsync(cancellationToken);
        if (user.Disabled)
        {
            await refreshTokens.RevokeAllForUserAsync(user.Id, cancellationToken);
            consoles.EndForUser(user.Id, ConsoleEndReasons.UserDisabled);
        }

        await audit.RecordAsync(new AuditEvent("user.update", AuditResults.Success, "user", id.ToString(),
            Details: new { before, after = new { role = user.Role, disabled = user.Disabled } }), cancellationToken);
        return UserResponse.From(user);
    }

    /// <summary>Sets a new password and revokes the user's refresh tokens; null when done.</summary>
    public async Task<Failure?> ResetPasswordAsync(Guid id, string password, CancellationToken cancellationToken)
    {
        if (AccountRules.PasswordProblem(password) is { } problem)
        {
            return new Invalid("password", problem);
        }

        var user = await db.Users.FirstOrDefaultAsync(u => u.Id == id, cancellationToken);
        if (user is null)
        {
            return new NotFound("The user");
        }

        user.PasswordHash = hasher.HashPassword(user, password);
        user.UpdatedAt = clock.GetUtcNow();
        await db.SaveChangesAsync(cancellationToken);
        await refreshTokens.RevokeAllForUserAsync(id, cancellationToken);
        await audit.RecordAsync(new AuditEvent("user.password.reset", AuditResults.Success, "user", id.ToString()), cancellationToken);
        return null;
    }

    /// <summary>Deletes an account that owns no VMs; never the caller's own. Null when done.</summary>
    public async Task<Failure?> DeleteAsync(Guid callerId, Guid id, CancellationToken cancellationToken)
    {
        if (id == callerId)
        {
            await audit.RecordAsync(new AuditEvent("user.delete", AuditResults.Failure, "user", id.ToString(), "self_delete"), cancellationToken);
            return new Conflict("You cannot delete your own account.");
        }

        if (await db.Vms.AnyAsync(v => v.OwnerId == id, cancellationToken))
        {
            await audit.RecordAsync(new AuditEvent("user.delete", AuditResults.Failure, "user", id.ToString(), "owns_vms"), cancellationToken);
            return new Conflict("The user still owns VMs; delete them first.");
        }

        var deleted = await db.Users.Where(u => u.Id == id).ExecuteDeleteAsync(cancellationToken);
        if (deleted == 0)
        {
            return new NotFound("The user");
        }

        consoles.EndForUser(id, ConsoleEndReasons.UserDisabled);
        await audit.RecordAsync(new AuditEvent("user.delete", AuditResults.Success, "user", id.ToString()), cancellationToken);
        return null;
    }
}
