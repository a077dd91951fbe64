using Microsoft.Extensions.Options;

namespace Limen.Features.Events;

public static class EventsServiceCollection
{
    /// <summary>The listener (every server), the SSE fan-out, the replay log and retention.</summary>
    public static IServiceCollection AddEvents(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<EventsOptions>()
            .Bind(configuration.GetSection(EventsOptions.Section))
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<EventsOptions>, EventsOptionsValidation>();
        services.AddSingleton<EventHub>();
        services.AddSingleton<EventLog>();
        services.AddSingleton<EventListener>();
        services.AddHostedService(sp => sp.GetRequiredService<EventListener>());
        services.AddSingleton<EventRetention>();
        services.AddHostedService(sp => sp.GetRequiredService<EventRetention>());
        return services;
    }

    /// <summary>Names the setting that is wrong, which a plain predicate cannot.</summary>
    private sealed class EventsOptionsValidation : IValidateOptions<EventsOptions>
    {
        public ValidateOptionsResult Validate(string? name, EventsOptions options) =>
            options.Problem() is { } problem ? ValidateOptionsResult.Fail(problem) : ValidateOptionsResult.Success;
    }
}
