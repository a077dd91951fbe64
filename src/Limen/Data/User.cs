namespace Limen.Data;

public static class Roles
{
    public const string Admin = "admin";
    public const string User = "user";

    public static bool IsValid(string role) => role is Admin or User;
}

public sealed class User
{
    public Guid Id { get; set; }
    public required string Username { get; set; }
    public required string PasswordHash { get; set; }
    public required string Role { get; set; }
    public bool Disabled { get; set; }

    /// <summary>
    /// Registered by the user themself and not yet approved by an admin: the account cannot sign in.
    /// A flag rather than an approved_at time: every existing and admin-made account is simply not
    /// pending (the column's default), and who approved when is in the audit trail.
    /// </summary>
    public bool Pending { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
}
