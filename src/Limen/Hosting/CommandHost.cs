using System.Diagnostics;
using System.Reflection;

namespace Limen.Hosting;

/// <summary>A host without a web server, for one-shot commands that share serve's configuration.</summary>
public static class CommandHost
{
    /// <summary>For commands that need Limen's services (migrate, alerts): the DbContext factory, options, clock.</summary>
    public static IHost Build(IDictionary<string, string?> overrides)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { ContentRootPath = AppContext.BaseDirectory });
        builder.Configuration.AddLimenSources(overrides);
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(console => console.SingleLine = true);
        builder.Services.AddLimenCore(builder.Configuration);
        return builder.Build();
    }

    /// <summary>
    /// The same configuration as <see cref="Build"/> (and so as serve), in the same order, without a
    /// host: backup, restore and drill read only configuration, and building the host, its service
    /// provider, logging and file watchers cost them about a third of a second before their first step.
    /// The files are read once (a one-shot command has nothing to reload).
    /// </summary>
    public static IConfigurationRoot Configuration(IDictionary<string, string?> overrides)
    {
        var builder = new ConfigurationBuilder();
        // As the generic host: its own settings (the environment name) from DOTNET_ variables first.
        builder.AddEnvironmentVariables(prefix: "DOTNET_");
        var environment = builder.Build()[HostDefaults.EnvironmentKey] ?? Environments.Production;
        builder.SetBasePath(AppContext.BaseDirectory)
            .AddJsonFile("appsettings.json", optional: true, reloadOnChange: false)
            .AddJsonFile($"appsettings.{environment}.json", optional: true, reloadOnChange: false);
        if (environment == Environments.Development)
        {
            builder.AddUserSecrets(Assembly.GetExecutingAssembly(), optional: true, reloadOnChange: false);
        }

        builder.AddEnvironmentVariables();
        builder.AddLimenSources(overrides);
        return builder.Build();
    }

    /// <summary>Time since this process started: the fixed cost a command has paid before its first step.</summary>
    public static TimeSpan SinceProcessStart() => DateTime.Now - Process.GetCurrentProcess().StartTime;
}
