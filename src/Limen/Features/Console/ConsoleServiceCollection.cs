using Limen.Features.Events;
using Microsoft.Extensions.Options;

// The folder is Features/Console; the namespace is not Limen.Features.Console because a namespace
// of that name would shadow System.Console in every Limen.Features.* file.
namespace Limen.Features.RemoteConsole;

public static class ConsoleServiceCollection
{
    /// <summary>Tickets, the session manager and its monitor, the origin policy and the console's metrics.</summary>
    public static IServiceCollection AddConsole(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<ConsoleOptions>()
            .Bind(configuration.GetSection(ConsoleOptions.Section))
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<ConsoleOptions>, ConsoleOptionsValidation>();
        services.AddSingleton<ConsoleMetrics>();
        services.AddSingleton<OriginPolicy>();
        services.AddSingleton<ConsoleTickets>();
        services.AddSingleton<ConsoleSessions>();
        services.AddSingleton<IEventConsumer, ConsoleTerminateConsumer>();
        services.AddSingleton<IEventConsumer, ConsoleVmConsumer>();
        services.AddHostedService<ConsoleSessionMonitor>();
        return services;
    }

    /// <summary>Names the setting that is wrong, which a plain predicate cannot.</summary>
    private sealed class ConsoleOptionsValidation : IValidateOptions<ConsoleOptions>
    {
        public ValidateOptionsResult Validate(string? name, ConsoleOptions options) =>
            options.Problem() is { } problem ? ValidateOptionsResult.Fail(problem) : ValidateOptionsResult.Success;
    }
}
