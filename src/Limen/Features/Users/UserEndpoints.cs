using Limen.Data;
using Limen.Web;
using Microsoft.AspNetCore.Http.HttpResults;

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
        [AsParameters] PageRequest page, UserAdmin users, CancellationToken cancellationToken) =>
        (await users.ListAsync(null, page, cancellationToken)).ToResult(TypedResults.Ok);

    private static async Task<Results<Created<UserResponse>, ProblemHttpResult>> Create(
        CreateUserRequest request, UserAdmin users, CancellationToken cancellationToken) =>
        (await users.CreateAsync(request, cancellationToken)).ToResult(user => TypedResults.Created($"/api/admin/users/{user.Id}", user));

    private static async Task<Results<Ok<UserResponse>, ProblemHttpResult>> Get(Guid id, UserAdmin users, CancellationToken cancellationToken) =>
        (await users.GetAsync(id, cancellationToken)).ToResult(TypedResults.Ok);

    private static async Task<Results<Ok<UserResponse>, ProblemHttpResult>> Update(
        Guid id, UpdateUserRequest request, HttpContext http, UserAdmin users, CancellationToken cancellationToken) =>
        (await users.UpdateAsync(http.User.GetUserId(), id, request, cancellationToken)).ToResult(TypedResults.Ok);

    private static async Task<Results<NoContent, ProblemHttpResult>> ResetPassword(
        Guid id, ResetPasswordRequest request, UserAdmin users, CancellationToken cancellationToken) =>
        (await users.ResetPasswordAsync(id, request.Password, cancellationToken)).ToNoContent();

    private static async Task<Results<NoContent, ProblemHttpResult>> Delete(
        Guid id, HttpContext http, UserAdmin users, CancellationToken cancellationToken) =>
        (await users.DeleteAsync(http.User.GetUserId(), id, cancellationToken)).ToNoContent();
}
