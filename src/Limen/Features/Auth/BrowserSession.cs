using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using Limen.Data;
using Limen.Features.Metrics;
using Limen.Hosting;
using Limen.Web;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Limen.Features.Auth;

/// <summary>
/// The browser's session: an HttpOnly, SameSite=Strict cookie holding the data-protected identity,
/// so no token is ever within reach of page scripts. The API takes it too (a request without an
/// Authorization header is a browser's), and then every unsafe method must also carry the
/// anti-forgery header, because a cookie is sent by the browser, not chosen by the page.
/// </summary>
public static class BrowserSession
{
    public const string Scheme = "limen-session";
    public const string CookieName = "limen_session";
    public const string AntiforgeryCookieName = "limen_csrf";
    public const string AntiforgeryHeader = "X-CSRF-TOKEN";
    public const string SignInPath = "/signin";
    public const string ReturnParameter = "return";

    /// <summary>The default scheme: a bearer token when the request has one, else the session cookie.</summary>
    public const string TokenOrCookie = "limen";

    /// <summary>
    /// A digest of the password hash, kept in the cookie: a password change or reset ends every
    /// browser session signed in with the old one, as it ends the refresh tokens.
    /// </summary>
    private const string PasswordStampClaim = "pwd";

    private static readonly Func<LimenDbContext, Guid, CancellationToken, Task<SessionUser?>> FindUser =
        EF.CompileAsyncQuery((LimenDbContext db, Guid id, CancellationToken _) =>
            db.Users.Where(u => u.Id == id).Select(u => new SessionUser(u.Id, u.Username, u.Role, u.Disabled, u.PasswordHash)).FirstOrDefault());

    private sealed record SessionUser(Guid Id, string Username, string Role, bool Disabled, string PasswordHash);

    public static AuthenticationBuilder AddBrowserSession(this AuthenticationBuilder authentication)
    {
        authentication.AddPolicyScheme(TokenOrCookie, "Bearer token or browser session", policy =>
            policy.ForwardDefaultSelector = http =>
                http.Request.Headers.Authorization.Count > 0 || (IsApi(http.Request) && !http.Request.Cookies.ContainsKey(CookieName))
                    ? JwtBearerDefaults.AuthenticationScheme
                    : Scheme);
        authentication.AddCookie(Scheme);
        authentication.Services.AddOptions<CookieAuthenticationOptions>(Scheme).Configure<IOptions<AuthOptions>>((cookie, auth) =>
        {
            cookie.Cookie.Name = CookieName;
            cookie.Cookie.HttpOnly = true;
            cookie.Cookie.SameSite = SameSiteMode.Strict;
            cookie.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
            cookie.ExpireTimeSpan = TimeSpan.FromHours(auth.Value.BrowserSessionHours);
            cookie.SlidingExpiration = true;
            cookie.LoginPath = SignInPath;
            cookie.ReturnUrlParameter = ReturnParameter;
            cookie.Events = new CookieAuthenticationEvents
            {
                OnValidatePrincipal = ValidateAsync,
                // The API answers as it does to a missing token; only pages are sent to the sign-in page.
                OnRedirectToLogin = context => IsApi(context.Request)
                    ? Problems.Unauthenticated("The browser session is missing or expired.").ExecuteAsync(context.HttpContext)
                    : RedirectToSignIn(context),
                OnRedirectToAccessDenied = context =>
                    Problems.Create(403, Problems.Forbidden, "Forbidden", "This needs an administrator.").ExecuteAsync(context.HttpContext),
            };
        });
        authentication.Services.AddAntiforgery(antiforgery =>
        {
            antiforgery.HeaderName = AntiforgeryHeader;
            antiforgery.Cookie.Name = AntiforgeryCookieName;
            antiforgery.Cookie.SameSite = SameSiteMode.Strict;
            antiforgery.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
        });
        return authentication;
    }

    /// <summary>The principal a sign-in stores: who, the role (re-read on every request) and the password stamp.</summary>
    public static ClaimsPrincipal Principal(User user) => new(new ClaimsIdentity(
        [
            new Claim(CurrentUser.IdClaim, user.Id.ToString()),
            new Claim(CurrentUser.NameClaim, user.Username),
            new Claim(CurrentUser.RoleClaim, user.Role),
            new Claim(PasswordStampClaim, PasswordStamp(user.PasswordHash)),
        ],
        Scheme, CurrentUser.NameClaim, CurrentUser.RoleClaim));

    /// <summary>
    /// An unsafe API request that rode on the session cookie must prove it came from our page; a
    /// token-authenticated one cannot be forged by another site and needs nothing more.
    /// </summary>
    public static async Task RequireAntiforgeryForCookieApiCalls(HttpContext http, RequestDelegate next)
    {
        if (IsApi(http.Request) && !HttpMethods.IsGet(http.Request.Method) && !HttpMethods.IsHead(http.Request.Method)
            && !HttpMethods.IsOptions(http.Request.Method) && http.User.Identity is { IsAuthenticated: true, AuthenticationType: Scheme })
        {
            try
            {
                await http.RequestServices.GetRequiredService<IAntiforgery>().ValidateRequestAsync(http);
            }
            catch (AntiforgeryValidationException)
            {
                await AntiforgeryProblem($"A request made with the browser session must carry the {AntiforgeryHeader} header of the page.").ExecuteAsync(http);
                return;
            }
        }

        await next(http);
    }

    /// <summary>
    /// A page's form post without its token (a page from before a restart with new keys, or another
    /// site's form): answered as a problem before the page runs, like every other refusal.
    /// </summary>
    public static async Task RequireAntiforgeryForForms(HttpContext http, RequestDelegate next)
    {
        if (http.GetEndpoint()?.Metadata.GetMetadata<IAntiforgeryMetadata>() is { RequiresValidation: true }
            && http.Features.Get<IAntiforgeryValidationFeature>() is { IsValid: false })
        {
            await AntiforgeryProblem("The form's anti-forgery token is missing or stale; reload the page and send it again.").ExecuteAsync(http);
            return;
        }

        await next(http);
    }

    private static Microsoft.AspNetCore.Http.HttpResults.ProblemHttpResult AntiforgeryProblem(string detail) =>
        Problems.Create(400, Problems.AntiforgeryFailed, "Anti-forgery check failed", detail);

    /// <summary>Not a page: the JSON API, the agent proxy and the console's WebSocket answer problems, never the sign-in page.</summary>
    private static bool IsApi(HttpRequest request) =>
        request.Path.StartsWithSegments("/api") || request.Path.StartsWithSegments("/agent") || request.Path.StartsWithSegments("/vnc");

    /// <summary>Only a local path comes back after sign-in; anything else would make the sign-in page an open redirect.</summary>
    public static string SafeReturnPath(string? path) =>
        !string.IsNullOrEmpty(path) && path.StartsWith('/') && !path.StartsWith("//", StringComparison.Ordinal)
            && !path.StartsWith("/\\", StringComparison.Ordinal) && !path.StartsWith(SignInPath, StringComparison.OrdinalIgnoreCase)
            ? path
            : "/";

    private static Task RedirectToSignIn(RedirectContext<CookieAuthenticationOptions> context)
    {
        var back = context.Request.PathBase + context.Request.Path + context.Request.QueryString;
        context.Response.Redirect($"{SignInPath}?{ReturnParameter}={Uri.EscapeDataString(back)}");
        return Task.CompletedTask;
    }

    /// <summary>Like a bearer token's check: the account must still exist, be enabled and keep its password; the role is read fresh.</summary>
    private static async Task ValidateAsync(CookieValidatePrincipalContext context)
    {
        var id = context.Principal?.FindUserId();
        var stamp = context.Principal?.FindFirst(PasswordStampClaim)?.Value;
        var dbFactory = context.HttpContext.RequestServices.GetRequiredService<IDbContextFactory<LimenDbContext>>();
        await using var db = await dbFactory.CreateDbContextAsync(context.HttpContext.RequestAborted);
        var user = id is { } userId ? await FindUser(db, userId, context.HttpContext.RequestAborted) : null;
        if (user is null || user.Disabled || stamp != PasswordStamp(user.PasswordHash))
        {
            context.HttpContext.RequestServices.GetRequiredService<LimenMetrics>().AuthFailures.WithLabels(AuthFailureReasons.InvalidToken).Inc();
            context.RejectPrincipal();
            await context.HttpContext.SignOutAsync(Scheme);
            return;
        }

        if (user.Role != context.Principal!.FindFirst(CurrentUser.RoleClaim)?.Value || user.Username != context.Principal.FindUsername())
        {
            context.ReplacePrincipal(Principal(new User { Id = user.Id, Username = user.Username, Role = user.Role, PasswordHash = user.PasswordHash }));
            context.ShouldRenew = true;
        }
    }

    private static string PasswordStamp(string passwordHash) =>
        Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(passwordHash)).AsSpan(0, 8));
}
