using System.Net.Sockets;
using System.Text.Json;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Mvc;
using Npgsql;

namespace Limen.Web;

/// <summary>
/// Turns exceptions into problem+json: binding errors into 4xx naming the field, a lost database
/// into 503, anything else into a 500 that shows internals only in Development.
/// </summary>
public sealed partial class ProblemExceptionHandler(IProblemDetailsService problems, IHostEnvironment environment,
    ILogger<ProblemExceptionHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        var problem = Describe(exception);
        if (problem.Status >= 500)
        {
            if (problem.Type == Problems.DatabaseUnavailable)
            {
                logger.LogWarning("Database unavailable: {Message}", exception.GetBaseException().Message);
                // Connections in the pool may point at a server that is gone; start afresh next time.
                NpgsqlConnection.ClearAllPools();
            }
            else if (problem.Type == Problems.HypervisorUnavailable)
            {
                logger.LogWarning("{Message}", exception.Message);
            }
            else
            {
                logger.LogError(exception, "Unhandled exception");
            }
        }

        httpContext.Response.StatusCode = problem.Status ?? 500;
        return await problems.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = httpContext,
            ProblemDetails = problem,
            Exception = exception,
        });
    }

    private ProblemDetails Describe(Exception exception)
    {
        switch (exception)
        {
            case BadHttpRequestException { InnerException: JsonException json }:
                {
                    var problem = New(400, Problems.MalformedRequest, "Malformed request", JsonDetail(json));
                    if (!string.IsNullOrEmpty(json.Path))
                    {
                        problem.Extensions["field"] = json.Path;
                    }

                    return problem;
                }
            case BadHttpRequestException bad:
                return New(bad.StatusCode, Problems.ForStatus(bad.StatusCode), ReasonPhrase(bad.StatusCode), bad.Message);
            case Features.Hosts.HypervisorUnavailableException e:
                return New(503, Problems.HypervisorUnavailable, "Hypervisor unavailable", e.Message);
            case Exception e when IsDatabaseUnavailable(e):
                return New(503, Problems.DatabaseUnavailable, "Database unavailable",
                    "The database cannot be reached right now; try again shortly.");
            default:
                return New(500, Problems.Internal, "Internal server error",
                    environment.IsDevelopment() ? exception.ToString() : "An unexpected error occurred; see the server log for this request id.");
        }
    }

    public static bool IsDatabaseUnavailable(Exception exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is NpgsqlException { IsTransient: true } or SocketException or TimeoutException
                || e is PostgresException { SqlState: "57P01" or "57P02" or "57P03" })
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The status a request that threw ends with; the metrics middleware labels it the same way.</summary>
    public static int StatusFor(Exception exception) => exception switch
    {
        BadHttpRequestException bad => bad.StatusCode,
        Features.Hosts.HypervisorUnavailableException => 503,
        _ when IsDatabaseUnavailable(exception) => 503,
        _ => 500,
    };

    // System.Text.Json's messages name our CLR types; a client needs the JSON path and the reason.
    private static string JsonDetail(JsonException json)
    {
        var message = json.Message;
        var cut = message.IndexOf(" Path:", StringComparison.Ordinal);
        message = cut > 0 ? message[..cut] : message;
        message = ClrTypeName().Replace(message, "the request body");
        return string.IsNullOrEmpty(json.Path) || json.Path == "$" ? message : $"Invalid value at '{json.Path}': {message}";
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"'?Limen\.[\w.]+'?")]
    private static partial System.Text.RegularExpressions.Regex ClrTypeName();

    private static string ReasonPhrase(int status) =>
        Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(status) is { Length: > 0 } phrase ? phrase : "Bad request";

    private static ProblemDetails New(int status, string type, string title, string detail) =>
        new() { Status = status, Type = type, Title = title, Detail = detail };
}
