using System.Security.Cryptography;
using Limen.Data;
using Limen.Hosting;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;

namespace Limen.Features.Users;

/// <summary>
/// Creates the first admin ("admin") when no admin exists. Its password comes from
/// Limen:AdminPassword / LIMEN_ADMIN_PASSWORD, or is generated, printed once, and kept in a 0600
/// file of the state directory. There is never a default password.
/// </summary>
public static class AdminBootstrap
{
    public const string Username = "admin";
    public const string PasswordFileName = "admin-password";

    public static async Task EnsureAdminAsync(IServiceProvider services, CancellationToken cancellationToken)
    {
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<LimenDbContext>();
        if (await db.Users.AnyAsync(u => u.Role == Roles.Admin, cancellationToken))
        {
            return;
        }

        var options = scope.ServiceProvider.GetRequiredService<Microsoft.Extensions.Options.IOptions<LimenOptions>>().Value;
        var logger = scope.ServiceProvider.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(AdminBootstrap));
        var configured = options.AdminPassword;
        if (!string.IsNullOrEmpty(configured) && AccountRules.PasswordProblem(configured) is { } problem)
        {
            throw new InvalidOperationException($"LIMEN_ADMIN_PASSWORD is not acceptable: {problem}");
        }

        var password = string.IsNullOrEmpty(configured) ? Generate() : configured;
        var now = TimeProvider.System.GetUtcNow();
        var admin = new User { Id = Guid.NewGuid(), Username = Username, PasswordHash = "", Role = Roles.Admin, CreatedAt = now, UpdatedAt = now };
        admin.PasswordHash = scope.ServiceProvider.GetRequiredService<IPasswordHasher<User>>().HashPassword(admin, password);
        db.Users.Add(admin);
        await db.SaveChangesAsync(cancellationToken);

        if (string.IsNullOrEmpty(configured))
        {
            var file = Path.Combine(StateDirectory.Ensure(options.StateDir), PasswordFileName);
            StateDirectory.WriteSecretFile(file, password + "\n");
            // Printed on stdout once, deliberately not through the logger (logs never carry secrets).
            System.Console.WriteLine($"Created the first admin account: username '{Username}', password '{password}' (also in {file}, mode 0600).");
            logger.LogInformation("Created the first admin account '{Username}' with a generated password (see {File})", Username, file);
        }
        else
        {
            logger.LogInformation("Created the first admin account '{Username}' with the configured password", Username);
        }
    }

    private static string Generate() =>
        Convert.ToBase64String(RandomNumberGenerator.GetBytes(18)).Replace('+', 'x').Replace('/', 'y');
}
