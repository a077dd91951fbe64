namespace Limen.Hosting;

/// <summary>A host without a web server, for one-shot commands that share serve's configuration.</summary>
public static class CommandHost
{
    public static IHost Build(IDictionary<string, string?> overrides)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { ContentRootPath = AppContext.BaseDirectory });
        builder.Configuration.AddLimenSources(overrides);
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(console => console.SingleLine = true);
        builder.Services.AddLimenCore(builder.Configuration);
        return builder.Build();
    }
}
