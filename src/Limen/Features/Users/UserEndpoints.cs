using Limen.Data;
using Limen.Features.Audit;
using Limen.Features.Auth;
using Limen.Features.RemoteConsole;
using Limen.Web;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;

namespace Limen.Features.Users;

/// <param name="Pending">Registered and not yet approved (POST /api/admin/registrations/{id}/approve): cannot sign in.</param>
public sealed record UserResponse(Guid Id, string Username, string Role, bool Disabled, bool Pending, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt)
{
    public static UserResponse From(User user) => new(user.Id, user.Username, user.Role, user.Disabled, user.Pending, user.CreatedAt, user.UpdatedAt);
}

public sealed record CreateUserRequest(string Username, string Password, string? Role = null);

public sealed record UpdateUserRequest(string? Role = null, bool? Disabled = null);

public sealed record ResetPasswordRequest(string Password);

public static class UserEndpoints
{
    public static IEndpointRouteBuilder MapUsers(this IEndpointRouteBuilder routes)
    {
        var admin = routes.MapGroup("/api/admin/users").WithTags("Users").RequireAuthorization(Policies.Admin);
        admin.MapGet("/", List);
        admin.MapPost("/", Create);
        admin.MapGet("/{id:guid}", Get);
        admin.MapPatch("/{id:guid}", Update);
        admin.MapPost("/{id:guid}/password", ResetPassword);
        admin.MapDelete("/{id:guid}", Delete);
        return routes;
    }

    private static async Task<Results<Ok<PagedList<UserResponse>>, ProblemHttpResult>> List(
        [AsParameters] PageRequest page, LimenDbContext db, CancellationToken cancellationToken)
    {
        if (page.Validate() is { } problem)
        {
            return Problems.Invalid(problem.Field, problem.Detail);
        }

        var total = await db.Users.CountAsync(cancellationToken);
        var users = await db.Users.AsNoTracking().OrderBy(u => u.Username).Skip(page.Skip).Take(page.Size).ToListAsync(cancellationToken);
        return TypedResults.Ok(new PagedList<UserResponse>(users.ConvertAll(UserResponse.From), total, page.Number, page.Size));
    }

    private static async Task<Results<Created<UserResponse>, ProblemHttpResult>> Create(
        CreateUserRequest request, LimenDbContext db, IPasswordHasher<User> hasher, AuditTrail audit, TimeProvider clock,
        CancellationToken cancellationToken)
    {
        var role = request.Role ?? Roles.User;
        var problem = AccountRules.UsernameProblem(request.Username) is { } u ? Problems.Invalid("username", u)
            : AccountRules.PasswordProblem(request.Password) is { } p ? Problems.Invalid("password", p)
            : !Roles.IsValid(role) ? Problems.Invalid("role", "role must be 'admin' or 'user'.")
            : null;
        if (problem is not null)
        {
            await audit.RecordAsync(new AuditEvent("user.create", AuditResults.Failure, "user", null, "validation"), cancellationToken);
            return problem;
        }

        var now = clock.GetUtcNow();
        var user = new User { Id = Guid.NewGuid(), Username = request.Username, PasswordHash = "", Role = role, CreatedAt = now, UpdatedAt = now };
        user.PasswordHash = hasher.HashPassword(user, request.Password);
        db.Users.Add(user);
        try
        {
            await db.SaveChangesAsync(cancellationToken);
        }
        catch (DbUpdateException e) when (e.IsUniqueViolation())
        {
            await audit.RecordAsync(new AuditEvent("user.create", AuditResults.Failure, "user", null, "username_taken",
                new { username = request.Username }), cancellationToken);
            return Problems.ConflictProblem($"The username '{request.Username}' is taken.");
        }

        await audit.RecordAsync(new AuditEvent("user.create", AuditResults.Success, "user", user.Id.ToString(),
            Details: new { username = user.Username, role }), cancellationToken);
        return TypedResults.Created($"/api/admin/users/{user.Id}", UserResponse.From(user));
    }

    private static async Task<Results<Ok<UserResponse>, ProblemHttpResult>> Get(Guid id, LimenDbContext db, CancellationToken cancellationToken)
    {
        var user = await db.Users.AsNoTracking().FirstOrDefaultAsync(u => u.Id == id, cancellationToken);
        return user is null ? Problems.NotFoundProblem("The user") : TypedResults.Ok(UserResponse.From(user));
    }

    private static async Task<Results<Ok<UserResponse>, ProblemHttpResult>> Update(
        Guid id, UpdateUserRequest request, HttpContext http, LimenDbContext db, RefreshTokens refreshTokens,
        ConsoleSessions consoles, AuditTrail audit, TimeProvider clock, CancellationToken cancellationToken)
    {
        if (request.Role is { } role && !Roles.IsValid(role))
        {
            return Problems.Invalid("role", "role must be 'admin' or 'user'.");
        }

        var user = await db.Users.FirstOrDefaultAsync(u => u.Id == id, cancellationToken);
        if (user is null)
        {
            return Problems.NotFoundProblem("The user");
        }

        // An admin who demotes or disables themself can lock everybody out.
        if (id == http.User.GetUserId() && ((request.Role is not null && request.Role != user.Role) || request.Disabled == true))
        {
            await audit.RecordAsync(new AuditEvent("user.update", AuditResults.Failure, "user", id.ToString(), "self_lockout"), cancellationToken);
            return Problems.ConflictProblem("You cannot change your own role or disable your own account.");
        }

        if ((request.Role ?? user.Role) == user.Role && (request.Disabled ?? user.Disabled) == user.Disabled)
        {
            return TypedResults.Ok(UserResponse.From(user));
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
        return TypedResults.Ok(UserResponse.From(user));
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> ResetPassword(
        Guid id, ResetPasswordRequest request, LimenDbContext db, IPasswordHasher<User> hasher, RefreshTokens refreshTokens,
        AuditTrail audit, TimeProvider clock, CancellationToken cancellationToken)
    {
        if (AccountRules.PasswordProblem(request.Password) is { } problem)
        {
            return Problems.Invalid("password", problem);
        }

        var user = await db.Users.FirstOrDefaultAsync(u => u.Id == id, cancellationToken);
        if (user is null)
        {
            return Problems.NotFoundProblem("The user");
        }

        user.PasswordHash = hasher.HashPassword(user, request.Password);
        user.UpdatedAt = clock.GetUtcNow();
        await db.SaveChangesAsync(cancellationToken);
        await refreshTokens.RevokeAllForUserAsync(id, cancellationToken);
        await audit.RecordAsync(new AuditEvent("user.password.reset", AuditResults.Success, "user", id.ToString()), cancellationToken);
        return TypedResults.NoContent();
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> Delete(
        Guid id, HttpContext http, LimenDbContext db, ConsoleSessions consoles, AuditTrail audit, CancellationToken cancellationToken)
    {
        if (id == http.User.GetUserId())
        {
            await audit.RecordAsync(new AuditEvent("user.delete", AuditResults.Failure, "user", id.ToString(), "self_delete"), cancellationToken);
            return Problems.ConflictProblem("You cannot delete your own account.");
        }

        if (await db.Vms.AnyAsync(v => v.OwnerId == id, cancellationToken))
        {
            await audit.RecordAsync(new AuditEvent("user.delete", AuditResults.Failure, "user", id.ToString(), "owns_vms"), cancellationToken);
            return Problems.ConflictProblem("The user still owns VMs; delete them first.");
        }

        var deleted = await db.Users.Where(u => u.Id == id).ExecuteDeleteAsync(cancellationToken);
        if (deleted == 0)
        {
            return Problems.NotFoundProblem("The user");
        }

        consoles.EndForUser(id, ConsoleEndReasons.UserDisabled);
        await audit.RecordAsync(new AuditEvent("user.delete", AuditResults.Success, "user", id.ToString()), cancellationToken);
        return TypedResults.NoContent();
    }
}
