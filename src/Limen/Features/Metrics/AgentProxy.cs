using System.Net.Http.Json;
using Limen.Web;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;

namespace Limen.Features.Metrics;

/// <summary>Settings under "Limen:Agent".</summary>
public sealed class AgentOptions
{
    public const string Section = "Limen:Agent";

    /// <summary>Base URL of the `limen agent` that /agent/… forwards to.</summary>
    public Uri Url { get; set; } = new(AgentServer.DefaultUrls);
}

/// <summary>
/// GET /agent/{path} → the configured agent, as the original's /agent/* proxy did. Unlike the
/// original it needs a signed-in user (any role): the dashboard shows host figures to every user,
/// but they are no business of anonymous callers. 503 problem when the agent does not answer.
/// </summary>
public static class AgentProxy
{
    public const string HttpClientName = "limen-agent";

    public static IServiceCollection AddAgentProxy(this IServiceCollection services, IConfiguration configuration)
    {
        services.Configure<AgentOptions>(configuration.GetSection(AgentOptions.Section));
        services.AddHttpClient(HttpClientName, http => http.Timeout = TimeSpan.FromSeconds(5));
        return services;
    }

    public static IEndpointRouteBuilder MapAgentProxy(this IEndpointRouteBuilder routes)
    {
        routes.MapGet("/agent/{**path}", Forward).WithTags("Agent");
        return routes;
    }

    private static async Task<IResult> Forward(string? path, HttpContext http, IHttpClientFactory clients,
        IOptions<AgentOptions> options, ILoggerFactory loggers, CancellationToken cancellationToken)
    {
        var agent = options.Value.Url;
        // Built with UriBuilder, never by resolving a relative URI: a path such as "//elsewhere/x"
        // must not be able to leave the configured agent.
        var target = new UriBuilder(agent)
        {
            Path = agent.AbsolutePath.TrimEnd('/') + "/" + path,
            Query = http.Request.QueryString.Value ?? "",
        }.Uri;
        var client = clients.CreateClient(HttpClientName);
        try
        {
            using var response = await client.GetAsync(target, cancellationToken);
            if (response.Content.Headers.ContentType?.MediaType == "application/problem+json")
            {
                // The agent's problem, re-issued as ours: its request_id must be this request's, as in X-Request-Id.
                var problem = await response.Content.ReadFromJsonAsync<ProblemDetails>(cancellationToken);
                return Problems.Create((int)response.StatusCode, problem?.Type ?? Problems.ForStatus((int)response.StatusCode),
                    problem?.Title ?? "Agent error", problem?.Detail);
            }

            // Samples pass through as they are.
            http.Response.StatusCode = (int)response.StatusCode;
            http.Response.ContentType = response.Content.Headers.ContentType?.ToString();
            await response.Content.CopyToAsync(http.Response.Body, cancellationToken);
            return Results.Empty;
        }
        catch (Exception e) when (e is HttpRequestException || (e is TaskCanceledException && !cancellationToken.IsCancellationRequested))
        {
            loggers.CreateLogger(typeof(AgentProxy)).LogWarning("Agent {Agent} unreachable: {Reason}", agent, e.Message);
            return Problems.Create(503, Problems.AgentUnavailable, "Agent unavailable",
                "The host agent did not answer; check that `limen agent` runs on the configured Limen:Agent:Url.");
        }
    }
}
