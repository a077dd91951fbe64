namespace Limen.Tests.Hostile;

/// <summary>Who may call an endpoint.</summary>
public enum Access
{
    /// <summary>Everybody, signed in or not, gets the same answer.</summary>
    Public,

    /// <summary>Any signed-in user; each sees only their own part (lists, quota, audit rows).</summary>
    Authenticated,

    /// <summary>The owner of the object in the route (and admins); everybody else is answered as for an id that does not exist.</summary>
    Owner,

    /// <summary>Admins only: 401 anonymously, 403 for users.</summary>
    Admin,

    /// <summary>Alertmanager's bearer token only; no user's token, not even an admin's.</summary>
    Webhook,

    /// <summary>The console WebSocket: a one-time ticket is the credential (probed by its own rules).</summary>
    ConsoleTicket,

    /// <summary>A UI page anybody may open (sign-in): 200 HTML for everybody.</summary>
    PublicPage,

    /// <summary>A UI page for signed-in users: anonymous callers land on the sign-in page with a way back; each sees only their own part.</summary>
    Page,

    /// <summary>
    /// A UI page of one object (a VM): anonymous callers land on the sign-in page; its owner and admins
    /// see it; anybody else gets exactly the answer for an id of nothing (the 404 not-found problem).
    /// </summary>
    OwnerPage,

    /// <summary>A UI page for admins: anonymous callers land on the sign-in page, users get 403.</summary>
    AdminPage,


    /// <summary>
    /// A UI page's form post: without the page's anti-forgery token it is a 400 for everybody who
    /// may open the page and changes nothing; anonymous callers of a signed-in page are sent to sign in.
    /// </summary>
    Form,

    /// <summary>The form post of a <see cref="PublicPage"/>: a 400 for everybody without the token.</summary>
    PublicForm,

    /// <summary>
    /// The form post of an <see cref="AdminPage"/>: anonymous callers are sent to sign in, users get
    /// 403 before any token is looked at, an admin without the token a 400; nothing changes.
    /// 403 as for the page, admins without the page's anti-forgery token a 400; nothing changes.
    /// </summary>
    AdminForm,

    /// <summary>A bundled static file (the build's static web assets, fingerprinted): the same bytes for everybody.</summary>
    StaticFile,
}

/// <summary>
/// The decision for one endpoint: who may call it and what a permitted call answers. The probe
/// request is built from the placeholders {p} (the principal's name), {image} and {user} (ids of
/// the world's objects); route parameters are filled with the world's objects of "user".
/// </summary>
/// <param name="Ok">The status a permitted principal gets for the probe.</param>
/// <param name="Fresh">Each permitted principal gets objects of its own (the probe consumes or changes them).</param>
/// <param name="Values">Route values that are no object id.</param>
/// <param name="EchoesRequests">It lists the caller's own requests (the audit trail), ids the caller sent included.</param>
public sealed record AccessRule(
    string Key, Access Access, int Ok, bool Fresh = false, string? Body = null, string? Query = null,
    IReadOnlyDictionary<string, string>? Values = null, string ContentType = "application/json", bool EchoesRequests = false);

public static class AccessRules
{
    /// <summary>A form post as a browser sends it, without the page's anti-forgery token.</summary>
    public const string FormPost = "_handler=probe&name=mx-{p}";
    public const string FormType = "application/x-www-form-urlencoded";

    /// <summary>A host id no host has: putting the world's one host in maintenance would stop every later create.</summary>
    private static readonly Dictionary<string, string> NoHost = new() { ["id"] = "6f1c2a7e-0d13-4c55-9a41-000000000013" };

    private const string CreateVm = """{"name":"mx-{p}","vcpus":1,"memory_mb":128,"disk_gb":1,"image_id":"{image}"}""";

    private const string AlertPayload = """
        {"version":"4","groupKey":"{}:{alertname=\"MatrixProbe\"}","status":"firing","receiver":"matrix","groupLabels":{},
         "commonLabels":{},"commonAnnotations":{},"externalURL":"http://127.0.0.1:9093","truncatedAlerts":0,
         "alerts":[{"status":"firing","labels":{"alertname":"MatrixProbe","severity":"info"},"annotations":{"summary":"probe"},
         "startsAt":"2026-01-01T00:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://127.0.0.1:9090","fingerprint":"abcdef0123456789"}]}
        """;

    /// <summary>Every endpoint of the application must appear here: a new one fails the matrix until someone decides.</summary>
    public static readonly IReadOnlyList<AccessRule> All =
    [
        new("GET /api/health/", Access.Public, 200),
        new("GET /api/health/live", Access.Public, 200),
        new("GET /api/metrics", Access.Public, 200),
        new("GET /api/openapi/{documentName}.json", Access.Public, 200, Values: new Dictionary<string, string> { ["documentName"] = "v1" }),
        new("GET /api/docs/{documentName?}", Access.Public, 200, Values: new Dictionary<string, string> { ["documentName"] = "v1" }),
        new("GET /api/docs/favicon.svg", Access.Public, 200),
        new("GET /api/docs/scalar.js", Access.Public, 200),
        new("GET /api/docs/scalar.aspnetcore.js", Access.Public, 200),
        new("GET /novnc/{**path}", Access.Public, 200, Values: new Dictionary<string, string> { ["path"] = "core/rfb.js" }),
        new("POST /api/auth/login", Access.Public, 200, Body: """{"username":"h-victim","password":"correct horse battery"}"""),
        new("POST /api/auth/refresh", Access.Public, 401),
        new("POST /api/auth/logout", Access.Public, 204),
        // The world has registration open: each principal registers an account of its own, all pending.
        new("POST /api/auth/register", Access.Public, 202, Body: """{"username":"mx-r-{p}","password":"correct horse battery"}"""),

        new("GET /api/auth/me", Access.Authenticated, 200),
        new("POST /api/auth/me/password", Access.Authenticated, 403, Body: """{"current_password":"not the password","new_password":"another long password"}"""),
        new("GET /api/images", Access.Authenticated, 200),
        new("GET /api/quota", Access.Authenticated, 200),
        new("GET /agent/{**path}", Access.Authenticated, 503, Values: new Dictionary<string, string> { ["path"] = "api/host" }),
        new("GET /api/vms/", Access.Authenticated, 200, Query: "?owner_id={user}"),
        new("POST /api/vms/", Access.Authenticated, 201, Body: CreateVm),
        new("GET /api/audit", Access.Authenticated, 200, Query: "?user_id={user}", EchoesRequests: true),
        new("GET /api/console/sessions/", Access.Authenticated, 200, Query: "?user_id={user}"),
        // A replay of everything kept: "other" must find none of user's events in it.
        new("GET /api/events", Access.Authenticated, 200, Query: "?last_event_id=0"),

        new("GET /api/vms/{id:guid}", Access.Owner, 200),
        new("PATCH /api/vms/{id:guid}", Access.Owner, 200, Fresh: true, Body: """{"memory_mb":256}"""),
        new("DELETE /api/vms/{id:guid}", Access.Owner, 204, Fresh: true),
        new("POST /api/vms/{id:guid}/actions/{action}", Access.Owner, 200, Fresh: true, Values: new Dictionary<string, string> { ["action"] = "start" }),
        new("PUT /api/vms/{id:guid}/boot-order", Access.Owner, 200, Fresh: true, Body: """{"devices":["hd"]}"""),
        new("PUT /api/vms/{id:guid}/cdrom", Access.Owner, 400, Body: """{"image_id":"{image}"}"""),
        new("DELETE /api/vms/{id:guid}/cdrom", Access.Owner, 200, Fresh: true),
        new("POST /api/vms/{id:guid}/console", Access.Owner, 409),
        new("GET /api/vms/{id:guid}/stats", Access.Owner, 200),
        new("GET /api/vms/{id:guid}/snapshots/", Access.Owner, 200),
        new("POST /api/vms/{id:guid}/snapshots/", Access.Owner, 201, Body: """{"name":"ms-{p}","description":"matrix"}"""),
        new("GET /api/vms/{id:guid}/snapshots/{sid:guid}", Access.Owner, 200),
        new("POST /api/vms/{id:guid}/snapshots/{sid:guid}/revert", Access.Owner, 200),
        new("DELETE /api/vms/{id:guid}/snapshots/{sid:guid}", Access.Owner, 204, Fresh: true),
        // Moving VMs is an admin's: the world has one host, so the VM has nowhere to go (409) and stays.
        new("POST /api/vms/{id:guid}/actions/migrate", Access.Admin, 409),
        new("GET /api/vms/{id:guid}/migrations", Access.Admin, 200),

        new("GET /api/admin/hosts/", Access.Admin, 200),
        // The world's only host is the configured local one: its URI is taken (409), and the per-host routes get an id of no host.
        new("POST /api/admin/hosts/", Access.Admin, 409, Body: """{"name":"mx-{p}","uri":"test:///default","console_address":"127.0.0.1","disk_dir":"/tmp"}"""),
        new("GET /api/admin/hosts/{id:guid}", Access.Admin, 404, Values: NoHost),
        new("POST /api/admin/hosts/{id:guid}/maintenance", Access.Admin, 404, Values: NoHost),
        new("POST /api/admin/hosts/{id:guid}/activate", Access.Admin, 404, Values: NoHost),
        new("DELETE /api/admin/hosts/{id:guid}", Access.Admin, 404, Values: NoHost),
        new("POST /api/admin/hosts/{id:guid}/drain", Access.Admin, 404, Values: NoHost),
        new("GET /api/admin/users/", Access.Admin, 200),
        new("POST /api/admin/users/", Access.Admin, 201, Body: """{"username":"mx-{p}","password":"correct horse battery"}"""),
        new("GET /api/admin/users/{id:guid}", Access.Admin, 200),
        new("PATCH /api/admin/users/{id:guid}", Access.Admin, 200, Body: """{"disabled":false}"""),
        new("POST /api/admin/users/{id:guid}/password", Access.Admin, 204, Fresh: true, Body: """{"password":"correct horse battery"}"""),
        new("DELETE /api/admin/users/{id:guid}", Access.Admin, 204, Fresh: true),
        new("PUT /api/admin/users/{id:guid}/quota", Access.Admin, 200, Body: """{"max_vms":100}"""),
        new("PUT /api/admin/quota", Access.Admin, 200, Body: """{"max_vms":1000}"""),
        // max_disk_gb: its default leaves room for what the matrix creates (max_vms would fall back to 10).
        new("DELETE /api/admin/users/{id:guid}/quota/{limit?}", Access.Admin, 200, Values: new Dictionary<string, string> { ["limit"] = "max_disk_gb" }),
        new("DELETE /api/admin/quota/{limit?}", Access.Admin, 200, Values: new Dictionary<string, string> { ["limit"] = "max_disk_gb" }),
        new("POST /api/admin/images/", Access.Admin, 400, Body: """{"name":"mx-{p}","file_name":"absent.qcow2","kind":"disk"}"""),
        new("POST /api/admin/images/upload", Access.Admin, 201, Query: "?name=mx-{p}&kind=disk", Body: "sixteen raw byte", ContentType: "application/octet-stream"),
        new("DELETE /api/admin/images/{id:guid}", Access.Admin, 204, Fresh: true),
        new("GET /api/alerts/", Access.Admin, 200),
        new("GET /api/admin/registrations/", Access.Admin, 200),
        new("POST /api/admin/registrations/{id:guid}/approve", Access.Admin, 200, Fresh: true),
        new("POST /api/admin/registrations/{id:guid}/reject", Access.Admin, 204, Fresh: true),
        new("GET /api/admin/settings", Access.Admin, 200),
        // Open already (the world's setting): a 200 that changes nothing.
        new("PUT /api/admin/settings", Access.Admin, 200, Body: """{"registration_open":true}"""),
        new("GET /api/admin/backups/{id:guid}/report", Access.Admin, 404, Values: new Dictionary<string, string> { ["id"] = "00000000-0000-4000-8000-000000000001" }),
        // The session's own user may end it too (the console page offers it at the session limit).
        new("DELETE /api/console/sessions/{sid:guid}", Access.Owner, 204, Fresh: true),

        new("POST /api/alerts/webhook", Access.Webhook, 204, Body: AlertPayload),

        new("* /vnc/{id:guid}", Access.ConsoleTicket, 101),

        // The web UI (src/Limen/Ui). Every page also answers POST: its forms post back to it.
        new("GET /signin", Access.PublicPage, 200),
        new("POST /signin", Access.PublicForm, 400, Body: FormPost, ContentType: FormType),
        new("GET /signout", Access.PublicPage, 200),
        new("POST /signout", Access.PublicForm, 400, Body: FormPost, ContentType: FormType),
        new("GET /register", Access.PublicPage, 200),
        new("POST /register", Access.PublicForm, 400, Body: FormPost, ContentType: FormType),
        new("GET /admin/registrations", Access.AdminPage, 200),
        new("POST /admin/registrations", Access.AdminForm, 400, Body: FormPost, ContentType: FormType),
        new("GET /", Access.Page, 200),
        new("POST /", Access.Form, 400, Body: FormPost, ContentType: FormType),
        new("GET /vms", Access.Page, 200),
        new("POST /vms", Access.Form, 400, Body: FormPost, ContentType: FormType),
        new("GET /vms/new", Access.Page, 200),
        new("POST /vms/new", Access.Form, 400, Body: FormPost, ContentType: FormType),
        new("GET /vms/{id:guid}", Access.OwnerPage, 200),
        new("POST /vms/{id:guid}", Access.Form, 400, Body: FormPost, ContentType: FormType),
        // The admin pages (Ui/Pages/Admin); a drill report that does not exist is a 404 page.
        new("GET /admin", Access.AdminPage, 200),
        new("POST /admin", Access.AdminForm, 400, Body: FormPost, ContentType: FormType),
        new("GET /admin/users", Access.AdminPage, 200),
        new("POST /admin/users", Access.AdminForm, 400, Body: FormPost, ContentType: FormType),
        // The sign-in page an anonymous caller lands on carries the path asked for (with its id) as the way back.
        new("GET /admin/users/{id:guid}", Access.AdminPage, 200, EchoesRequests: true),
        new("POST /admin/users/{id:guid}", Access.AdminForm, 400, Body: FormPost, ContentType: FormType, EchoesRequests: true),
        new("GET /admin/quota", Access.AdminPage, 200),
        new("POST /admin/quota", Access.AdminForm, 400, Body: FormPost, ContentType: FormType),
        new("GET /admin/sessions", Access.AdminPage, 200),
        new("POST /admin/sessions", Access.AdminForm, 400, Body: FormPost, ContentType: FormType),
        new("GET /admin/alerts", Access.AdminPage, 200),
        new("POST /admin/alerts", Access.AdminForm, 400, Body: FormPost, ContentType: FormType),
        new("GET /admin/audit", Access.AdminPage, 200),
        new("POST /admin/audit", Access.AdminForm, 400, Body: FormPost, ContentType: FormType),
        new("GET /admin/backups", Access.AdminPage, 200),
        new("POST /admin/backups", Access.AdminForm, 400, Body: FormPost, ContentType: FormType),
        new("GET /admin/backups/{id:guid}", Access.AdminPage, 404, Values: new Dictionary<string, string> { ["id"] = "00000000-0000-4000-8000-000000000001" }),
        new("POST /admin/backups/{id:guid}", Access.AdminForm, 400, Body: FormPost, ContentType: FormType, Values: new Dictionary<string, string> { ["id"] = "00000000-0000-4000-8000-000000000001" }),
        new("GET /admin/images", Access.AdminPage, 200),
        new("POST /admin/images", Access.AdminForm, 400, Body: FormPost, ContentType: FormType),
        new("GET /vms/{id:guid}/console", Access.OwnerPage, 200),
        new("POST /vms/{id:guid}/console", Access.Form, 400, Body: FormPost, ContentType: FormType),
        // Blazor's redirect for enhanced navigation: without a protected target there is nothing to follow.
        new("GET /_framework/opaque-redirect", Access.Public, 400),
        new("GET {**path:file}", Access.StaticFile, 200, Values: new Dictionary<string, string> { ["path"] = "favicon.svg" }),
        new("HEAD {**path:file}", Access.StaticFile, 200, Values: new Dictionary<string, string> { ["path"] = "favicon.svg" }),
    ];

    /// <summary>
    /// The rule for <paramref name="key"/>; the build's static web assets (routes without a leading
    /// slash, renamed whenever their content changes) are all <see cref="Access.StaticFile"/>.
    /// </summary>
    public static AccessRule? Find(string key) =>
        All.FirstOrDefault(r => r.Key == key)
        ?? (key.Split(' ', 2) is [("GET" or "HEAD"), var pattern] && !pattern.StartsWith('/') && !pattern.Contains('{', StringComparison.Ordinal)
            ? new AccessRule(key, Access.StaticFile, 200)
            : null);
}
