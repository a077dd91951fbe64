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
public sealed class ProblemExceptionHandler(IProblemDetailsService problems, IHostEnvironment environment,
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
            case BadHttpRequestException { InnerException: TextInputException text }:
                {
                    var field = ApiLanguage.MemberName(text.Path);
                    var problem = New(400, Problems.Validation, "Invalid request", $"{field} {text.Problem}");
                    problem.Extensions["field"] = field;
                    return problem;
                }
            case BadHttpRequestException { InnerException: JsonException json }:
                {
                    var problem = New(400, Problems.MalformedRequest, "Malformed request", ApiLanguage.JsonDetail(json));
                    if (!string.IsNullOrEmpty(json.Path))
                    {
                        problem.Extensions["field"] = json.Path;
                    }

                    return problem;
                }
            case BadHttpRequestException bad:
                {
                    var (field, detail) = ApiLanguage.BindingDetail(bad);
                    var problem = New(bad.StatusCode, Problems.ForStatus(bad.StatusCode), ReasonPhrase(bad.StatusCode), detail);
                    if (field is not null)
                    {
                        problem.Extensions["field"] = field;
                    }

                    return problem;
                }
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

    /// <summary>
    /// PostgreSQL cannot serve us right now: not reachable, shutting down or starting up, or (with
    /// several hosts) none of them a primary — the moment between a primary's stop and its standby's
    /// promotion, which Npgsql reports as a plain NpgsqlException known only by its message. A
    /// read-only transaction refusing a write (25006) means the session landed on a standby: a
    /// single endpoint (a managed database, an HAProxy before Patroni) pointing at a node that is
    /// not, or no longer, the primary.
    /// </summary>
    public static bool IsDatabaseUnavailable(Exception exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is NpgsqlException { IsTransient: true } or SocketException or TimeoutException
                || e is PostgresException { SqlState: "57P01" or "57P02" or "57P03" or "25006" }
                || (e.GetType() == typeof(NpgsqlException) && e.Message.StartsWith(NoSuitableHost, StringComparison.Ordinal)))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>How Npgsql's multi-host connections begin the message when no listed host will do.</summary>
    private const string NoSuitableHost = "No suitable host";

    /// <summary>The status a request that threw ends with; the metrics middleware labels it the same way.</summary>
    public static int StatusFor(Exception exception) => exception switch
    {
        BadHttpRequestException bad => bad.StatusCode,
        Features.Hosts.HypervisorUnavailableException => 503,
        _ when IsDatabaseUnavailable(exception) => 503,
        _ => 500,
    };

    private static string ReasonPhrase(int status) =>
        Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(status) is { Length: > 0 } phrase ? phrase : "Bad request";

    private static ProblemDetails New(int status, string type, string title, string detail) =>
        new() { Status = status, Type = type, Title = title, Detail = detail };
}
