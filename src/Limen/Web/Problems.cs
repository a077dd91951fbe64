using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace Limen.Web;

/// <summary>
/// Stable RFC 9457 problem types. Clients switch on <c>type</c>, never on <c>title</c> or <c>detail</c>.
/// </summary>
public static class Problems
{
    private const string Prefix = "urn:limen:problem:";

    public const string Validation = Prefix + "validation";
    public const string MalformedRequest = Prefix + "malformed-request";
    public const string Unauthorized = Prefix + "unauthorized";
    public const string Forbidden = Prefix + "forbidden";
    public const string AntiforgeryFailed = Prefix + "antiforgery-failed";
    public const string NotFound = Prefix + "not-found";
    public const string MethodNotAllowed = Prefix + "method-not-allowed";
    public const string Conflict = Prefix + "conflict";
    public const string PayloadTooLarge = Prefix + "payload-too-large";
    public const string UnsupportedMediaType = Prefix + "unsupported-media-type";
    public const string RateLimited = Prefix + "rate-limited";
    public const string DatabaseUnavailable = Prefix + "database-unavailable";
    public const string AgentUnavailable = Prefix + "agent-unavailable";
    public const string NotReady = Prefix + "not-ready";
    public const string Internal = Prefix + "internal";
    public const string HypervisorUnavailable = Prefix + "hypervisor-unavailable";
    public const string VmOperationFailed = Prefix + "vm-operation-failed";
    public const string InvalidState = Prefix + "invalid-state";
    public const string QuotaExceeded = Prefix + "quota-exceeded";
    public const string InsufficientStorage = Prefix + "insufficient-storage";
    public const string InsufficientCapacity = Prefix + "insufficient-capacity";
    public const string RegistrationClosed = Prefix + "registration-closed";
    public const string PendingApproval = Prefix + "pending-approval";

    public static string ForStatus(int status) => status switch
    {
        400 => MalformedRequest,
        401 => Unauthorized,
        403 => Forbidden,
        404 => NotFound,
        405 => MethodNotAllowed,
        409 => Conflict,
        413 => PayloadTooLarge,
        415 => UnsupportedMediaType,
        429 => RateLimited,
        503 => DatabaseUnavailable,
        507 => InsufficientStorage,
        _ => Internal,
    };

    public static ProblemHttpResult Create(int status, string type, string title, string? detail = null,
        IDictionary<string, object?>? extensions = null) =>
        TypedResults.Problem(detail, statusCode: status, title: title, type: type, extensions: extensions);

    public static ProblemHttpResult Invalid(string field, string detail) =>
        Create(400, Validation, "Invalid request", detail, new Dictionary<string, object?> { ["field"] = field });

    public static ProblemHttpResult NotFoundProblem(string what) =>
        Create(404, NotFound, "Not found", $"{what} was not found.");

    public static ProblemHttpResult ConflictProblem(string detail) =>
        Create(409, Conflict, "Conflict", detail);

    /// <summary>507: the disk folder has no room for what the request needed to write; nothing was kept.</summary>
    public static ProblemHttpResult DiskFull(string what) =>
        Create(507, InsufficientStorage, "Insufficient storage",
            $"{what}: the host's disk folder is full. Nothing was kept; free space (or ask an administrator to) and try again.");

    public static ProblemHttpResult Unauthenticated(string detail) =>
        Create(401, Unauthorized, "Unauthorized", detail);

    /// <summary>Retry-After in whole seconds (at least 1), for a 429.</summary>
    public static void SetRetryAfter(HttpResponse response, TimeSpan retryAfter) =>
        response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Fills in type and request id on every problem, including those the framework writes itself.</summary>
    public static void Customize(ProblemDetailsContext context)
    {
        var problem = context.ProblemDetails;
        var status = problem.Status ?? context.HttpContext.Response.StatusCode;
        if (problem.Type is null || problem.Type.StartsWith("https://tools.ietf.org/", StringComparison.Ordinal))
        {
            problem.Type = ForStatus(status);
        }

        problem.Extensions["request_id"] = context.HttpContext.TraceIdentifier;
    }
}
