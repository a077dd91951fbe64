using Microsoft.Extensions.Configuration;

namespace Limen.Hosting;

/// <summary>
/// The short environment names operators expect (LIMEN_URLS, LIMEN_STATE_DIR, LIMEN_ADMIN_PASSWORD,
/// LIMEN_LOG_FORMAT, DATABASE_URL) mapped onto configuration keys. They win over appsettings and Limen__… variables;
/// explicit command-line options win over them.
/// </summary>
public static class LimenConfiguration
{
    private static readonly (string Env, string Key)[] ShortNames =
    [
        ("LIMEN_URLS", "urls"),
        ("LIMEN_STATE_DIR", "Limen:StateDir"),
        ("LIMEN_ADMIN_PASSWORD", "Limen:AdminPassword"),
        ("DATABASE_URL", "DATABASE_URL"),
        ("LIMEN_LOG_FORMAT", "Limen:LogFormat"),
    ];

    public static IConfigurationBuilder AddLimenSources(this IConfigurationBuilder config, IDictionary<string, string?> overrides)
    {
        var fromEnvironment = new Dictionary<string, string?>();
        foreach (var (env, key) in ShortNames)
        {
            var value = Environment.GetEnvironmentVariable(env);
            if (!string.IsNullOrEmpty(value))
            {
                fromEnvironment[key] = value;
            }
        }

        config.AddInMemoryCollection(fromEnvironment);
        config.AddInMemoryCollection(overrides);
        return config;
    }

    public static LimenOptions GetLimenOptions(this IConfiguration configuration) =>
        configuration.GetSection(LimenOptions.Section).Get<LimenOptions>() ?? new LimenOptions();
}
