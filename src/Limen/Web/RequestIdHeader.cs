namespace Limen.Web;

public static class RequestIdHeader
{
    public const string Name = "X-Request-Id";

    /// <summary>
    /// Puts X-Request-Id on every response. Added when the response starts rather than now, so it
    /// survives the exception handler, which clears the headers before it writes its problem.
    /// Goes first in a pipeline.
    /// </summary>
    public static IApplicationBuilder UseRequestIdHeader(this IApplicationBuilder app) => app.Use((context, next) =>
    {
        context.Response.OnStarting(static state =>
        {
            var http = (HttpContext)state;
            http.Response.Headers[Name] = http.TraceIdentifier;
            return Task.CompletedTask;
        }, context);
        return next(context);
    });
}
