using Limen.Data;
using Limen.Features.RemoteConsole;
using Limen.Features.Hosts;
using Limen.Features.Users;
using Microsoft.AspNetCore.DataProtection;

namespace Limen.Hosting;

/// <summary>
/// What `limen serve` does before it listens: schema, first admin, console sessions a crash left
/// open, the hosts' rows, the browser sessions' key ring.
/// </summary>
public static class LimenStartup
{
    public static async Task PrepareAsync(IServiceProvider services, CancellationToken cancellationToken)
    {
        await DatabaseStartup.MigrateAsync(services, cancellationToken);
        await AdminBootstrap.EnsureAdminAsync(services, cancellationToken);
        await ConsoleSessions.CloseLeftoversAsync(services, cancellationToken);
        await using var scope = services.CreateAsyncScope();
        await services.GetRequiredService<HostRegistry>().EnsureAsync(scope.ServiceProvider.GetRequiredService<LimenDbContext>(), cancellationToken);
        // Created now rather than by the first sign-in, so no request ever writes the key table.
        services.GetRequiredService<IDataProtectionProvider>().CreateProtector("limen.startup").Protect([1]);
    }
}
