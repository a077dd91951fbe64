using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Authorization.Policy;

namespace Limen.Features.Audit;

/// <summary>Records every request that authorization refuses (403) before the default handler answers it.</summary>
public sealed class ForbiddenAuditHandler(AuditTrail audit) : IAuthorizationMiddlewareResultHandler
{
    private readonly AuthorizationMiddlewareResultHandler inner = new();

    public async Task HandleAsync(RequestDelegate next, HttpContext context, AuthorizationPolicy policy, PolicyAuthorizationResult authorizeResult)
    {
        if (authorizeResult.Forbidden)
        {
            var route = (context.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText;
            await audit.RecordAsync(new AuditEvent("authz.denied", AuditResults.Denied, "route", route,
                ErrorCode: "forbidden", Details: new { method = context.Request.Method, path = context.Request.Path.Value }),
                context.RequestAborted);
        }

        await inner.HandleAsync(next, context, policy, authorizeResult);
    }
}
