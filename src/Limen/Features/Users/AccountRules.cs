using System.Text.RegularExpressions;

namespace Limen.Features.Users;

/// <summary>What a username and a password must look like; one place for both.</summary>
public static partial class AccountRules
{
    public const int MinPasswordLength = 12;

    // Bounded so a client cannot make the server hash megabytes.
    public const int MaxPasswordLength = 256;

    /// <summary>ASCII only: no look-alike unicode, no control characters, safe in logs and labels.</summary>
    [GeneratedRegex(@"^[a-z0-9][a-z0-9._-]{2,31}\z")]
    private static partial Regex UsernamePattern();

    public static string? UsernameProblem(string username) =>
        UsernamePattern().IsMatch(username)
            ? null
            : "username must be 3 to 32 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit.";

    public static string? PasswordProblem(string password) =>
        password.Length < MinPasswordLength ? $"password must be at least {MinPasswordLength} characters."
        : password.Length > MaxPasswordLength ? $"password must be at most {MaxPasswordLength} characters."
        : null;
}
