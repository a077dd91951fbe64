using System.Text;
using CsCheck;
using Microsoft.Extensions.DependencyInjection;
using static Limen.Tests.Hostile.HostileValues;

namespace Limen.Tests.Hostile;

/// <summary>One generated request and the parts that make it hostile.</summary>
public sealed record HostileCase(HostileRequest Request, IReadOnlyList<Hostile> Parts)
{
    public bool Definite => Parts.Any(p => p.Definite);

    /// <summary>The kinds of hostility in it, for grouping failures: "wrong: number as a string; maybe: markup".</summary>
    public string Labels => string.Join("; ", Parts.Select(p => (p.Definite ? "" : "maybe ") + p.Label).Distinct());
}

/// <summary>A JSON member of a body template: its name, a value that is fine, and what is wrong for it.</summary>
public sealed record BodyField(string Name, string Good, Gen<Hostile> Bad, bool Required = false);

/// <summary>
/// How hostile requests for one mutating endpoint are made: by whom, to which path, from which
/// valid body. <paramref name="StrictMembers"/>: unknown, duplicate and case-changed members are
/// wrong for sure (the API's input policy); the Alertmanager webhook skips unknown members by design.
/// </summary>
public sealed record EndpointRecipe(
    string Key,
    Func<HostileWorld, Principal> Caller,
    Func<HostileWorld, ApiEndpoint, Gen<HostileCase>> Cases,
    IReadOnlySet<int>? Successes = null)
{
    /// <summary>Statuses below 400 that a hostile case may still get because the input is in fact harmless.</summary>
    public IReadOnlySet<int> Allowed => Successes ?? new HashSet<int>();
}

/// <summary>The recipes, one per mutating endpoint of the application (a test checks none is missing).</summary>
public static class HostileCases
{
    private const string GoodAlerts = """[{"status":"firing","labels":{"alertname":"HostileProbe","severity":"info"},"annotations":{"summary":"probe"},"startsAt":"2026-01-01T00:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://127.0.0.1:9090","fingerprint":"abcdef0123456789"}]""";

    private static Gen<Hostile> Quota() => WholeNumber(0, 1_000_000, nullable: true);

    private static readonly string[] QuotaFields = ["max_vms", "max_vcpus", "max_memory_mb", "max_disk_gb", "max_snapshots"];

    public static readonly IReadOnlyList<EndpointRecipe> All =
    [
        Body("POST /api/auth/login", w => w.Anonymous, w => "/api/auth/login",
            new BodyField("username", "\"h-victim\"", RestrictedName("h-victim", 32, nullable: false), Required: true),
            new BodyField("password", JsonString("not the right password"), Password(), Required: true)),
        Body("POST /api/auth/register", w => w.Anonymous, w => "/api/auth/register",
            new BodyField("username", "\"hz-reg\"", RestrictedName("hz-reg", 32, nullable: false), Required: true),
            new BodyField("password", JsonString("correct horse battery"), Password(), Required: true)),
        Body("PUT /api/admin/settings", w => w.Admin, w => "/api/admin/settings",
            new BodyField("registration_open", "true", Boolean(nullable: true))),
        Body("POST /api/auth/me/password", w => w.User, w => "/api/auth/me/password",
            new BodyField("current_password", JsonString("not the password"), Password(), Required: true),
            new BodyField("new_password", JsonString("another long password"), Password(), Required: true)),
        Body("POST /api/admin/users/", w => w.Admin, w => "/api/admin/users/",
            new BodyField("username", "\"hz-new\"", RestrictedName("hz-new", 32, nullable: false), Required: true),
            new BodyField("password", JsonString("correct horse battery"), Password(), Required: true),
            new BodyField("role", "\"user\"", Word(nullable: true, "admin", "user"))),
        // The good URI is the local host's: even a request whose other fields all pass is a 409 and adds nothing.
        Body("POST /api/admin/hosts/", w => w.Admin, w => "/api/admin/hosts/",
            new BodyField("name", "\"hz-host\"", RestrictedName("hz-host", 63, nullable: false), Required: true),
            new BodyField("uri", JsonString("test:///default"), PrintableName("test:///default", 1024), Required: true),
            new BodyField("console_address", JsonString("127.0.0.1"), RestrictedName("127.0.0.1", 253, nullable: false), Required: true),
            new BodyField("disk_dir", JsonString("/tmp"), PrintableName("/tmp", 1024), Required: true),
            new BodyField("migration_address", JsonString("127.0.0.1"), RestrictedName("127.0.0.1", 253, nullable: true)),
            new BodyField("virtualization_type", "\"qemu\"", Word(nullable: true, "auto", "kvm", "qemu"))),
        Body("PATCH /api/admin/users/{id:guid}", w => w.Admin, w => $"/api/admin/users/{w.VictimId}",
            new BodyField("role", "\"user\"", Word(nullable: true, "admin", "user")),
            new BodyField("disabled", "false", Boolean(nullable: true))),
        Body("POST /api/admin/users/{id:guid}/password", w => w.Admin, w => $"/api/admin/users/{w.VictimId}/password",
            new BodyField("password", JsonString("correct horse battery"), Password(), Required: true)),
        Body("PUT /api/admin/users/{id:guid}/quota", w => w.Admin, w => $"/api/admin/users/{w.VictimId}/quota",
            QuotaFields.Select(f => new BodyField(f, "5", Quota())).ToArray()),
        Body("PUT /api/admin/quota", w => w.Admin, w => "/api/admin/quota",
            QuotaFields.Select(f => new BodyField(f, "900", Quota())).ToArray()),
        Body("POST /api/admin/images/", w => w.Admin, w => "/api/admin/images/",
            new BodyField("name", "\"hostile-new\"", PrintableName("hostile-new", 64), Required: true),
            // The good file is registered already (409): no generated case can register a file.
            new BodyField("file_name", "\"hostile-disk.qcow2\"", Gen.OneOf(
                Hostile.Wrong("file outside the image folder", Json(["../../etc/passwd", "/etc/passwd", "..", ".", "", "/", "hostile-disk.qcow2/..", "~root/.ssh/id_rsa"])),
                Hostile.Wrong("file that does not exist", Json(["absent.qcow2", "hostile-disk.qcow2\u0000", "HOSTILE-DISK.QCOW2", "hostile-disk.qcow2 "])),
                Hostile.Wrong("not a string", "1", "true", "[]", "{}", "null")), Required: true),
            new BodyField("kind", "\"disk\"", Word(nullable: false, "disk", "iso"), Required: true)),
        Upload(),
        Body("POST /api/vms/", w => w.User, w => "/api/vms/",
            new BodyField("name", "\"hv-new\"", RestrictedName("hv-new", 63, nullable: false), Required: true),
            new BodyField("vcpus", "1", WholeNumber(1, 4096, nullable: false), Required: true),
            new BodyField("memory_mb", "128", WholeNumber(64, 1L << 24, nullable: false), Required: true),
            new BodyField("disk_gb", "1", WholeNumber(1, 2048, nullable: false), Required: true),
            new BodyField("image_id", "\"{image}\"", Reference(), Required: true),
            new BodyField("start", "false", Boolean(nullable: false))),
        // The good values are the VM's own: a PATCH of them alone would change nothing.
        Body("PATCH /api/vms/{id:guid}", w => w.User, w => $"/api/vms/{w.VmId}",
            new BodyField("name", "\"{vm_name}\"", RestrictedName("uvm-name", 63, nullable: true)),
            new BodyField("vcpus", "1", WholeNumber(1, 4096, nullable: true)),
            new BodyField("memory_mb", "128", WholeNumber(64, 1L << 24, nullable: true))),
        Body("PUT /api/vms/{id:guid}/cdrom", w => w.User, w => $"/api/vms/{w.VmId}/cdrom",
            new BodyField("image_id", "\"{image}\"", Reference(), Required: true)),
        Body("PUT /api/vms/{id:guid}/boot-order", w => w.User, w => $"/api/vms/{w.VmId}/boot-order",
            new BodyField("devices", "[\"hd\"]", Devices(), Required: true)),
        Body("POST /api/vms/{id:guid}/snapshots/", w => w.User, w => $"/api/vms/{w.VmId}/snapshots/",
            new BodyField("name", "\"hs-new\"", RestrictedName("hs-new", 63, nullable: false), Required: true),
            new BodyField("description", "\"hostile\"", FreeText(1000)),
            new BodyField("include_memory", "false", Boolean(nullable: false))),
        Body("POST /api/alerts/webhook", w => w.Webhook, w => "/api/alerts/webhook", strictMembers: false, fields:
        [
            new BodyField("version", "\"4\"", Word(nullable: false, "4"), Required: true),
            new BodyField("groupKey", "\"{}:{alertname=\\\"HostileProbe\\\"}\"", Hostile.Wrong("not a string", "1", "[]", "{}", "null"), Required: true),
            new BodyField("status", "\"firing\"", Word(nullable: false, "firing", "resolved"), Required: true),
            new BodyField("receiver", "\"hostile\"", Gen.OneOf(
                Hostile.Wrong("empty or overlong receiver", "\"\"", JsonString(new string('r', 201))),
                Hostile.Maybe("markup in a receiver", Json(Markup)),
                Hostile.Wrong("not a string", "1", "[]", "{}", "null")), Required: true),
            new BodyField("alerts", GoodAlerts, Alerts(GoodAlerts), Required: true),
            new BodyField("truncatedAlerts", "0", Hostile.Wrong("not an integer", "\"0\"", "1.5", "true", "[]", "1e400")),
            new BodyField("commonLabels", "{}", Hostile.Wrong("not a string map", "[]", "\"x\"", "1", "{\"a\":1}", "{\"a\":{}}")),
            new BodyField("externalURL", "\"http://127.0.0.1:9093\"", Hostile.Wrong("not a string", "1", "[]", "{}")),
        ]),

        Route("POST /api/auth/refresh", w => w.Anonymous, Cookies("/api/auth/refresh")),
        Route("POST /api/auth/logout", w => w.Anonymous, Cookies("/api/auth/logout"), successes: [204]),
        Route("DELETE /api/admin/hosts/{id:guid}", w => w.Admin, (w, e) => Ids(e, Nothing(), Own("a configured host", LocalHost(w)))),
        Route("POST /api/admin/hosts/{id:guid}/maintenance", w => w.Admin, (w, e) => Ids(e, Nothing(), Nothing())),
        Route("POST /api/admin/hosts/{id:guid}/activate", w => w.Admin, (w, e) => Ids(e, Nothing(), Nothing())),
        // A drain of the one host would put it in maintenance: only ids of nothing here.
        Route("POST /api/admin/hosts/{id:guid}/drain", w => w.Admin, (w, e) => Ids(e, Nothing(), Nothing())),
        Route("POST /api/vms/{id:guid}/actions/migrate", w => w.Admin, (w, e) => Ids(e, Nothing(), Own("a VM with no other host to go to", w.VmId))),
        Route("DELETE /api/admin/users/{id:guid}", w => w.Admin, (w, e) => Ids(e, Nothing(), Own("the admin's own account", w.Admin.Id!.Value))),
        Route("POST /api/admin/registrations/{id:guid}/approve", w => w.Admin, (w, e) => Ids(e, Nothing(), Own("an account that is no registration", w.VictimId))),
        Route("POST /api/admin/registrations/{id:guid}/reject", w => w.Admin, (w, e) => Ids(e, Nothing(), Own("an account that is no registration", w.VictimId))),
        Route("DELETE /api/admin/images/{id:guid}", w => w.Admin, (w, e) => Ids(e, Nothing(), Own("an image in use", w.ImageId))),
        Route("DELETE /api/console/sessions/{sid:guid}", w => w.Admin, (w, e) => Ids(e, Nothing(), Own("an ended session", w.SessionId))),
        Route("DELETE /api/vms/{id:guid}", w => w.User, (w, e) => Ids(e, Nothing(), Own("other's VM", w.OtherVmId))),
        Route("DELETE /api/vms/{id:guid}/cdrom", w => w.User, (w, e) => Ids(e, Nothing(), Own("other's VM", w.OtherVmId))),
        Route("POST /api/vms/{id:guid}/console", w => w.User, (w, e) => Ids(e, Nothing(), Own("other's VM", w.OtherVmId))),
        Route("POST /api/vms/{id:guid}/actions/{action}", w => w.User, Actions),
        Route("POST /api/vms/{id:guid}/snapshots/{sid:guid}/revert", w => w.User, Snapshots),
        Route("DELETE /api/vms/{id:guid}/snapshots/{sid:guid}", w => w.User, Snapshots),
        Route("DELETE /api/admin/users/{id:guid}/quota/{limit?}", w => w.Admin, QuotaResets),
        Route("DELETE /api/admin/quota/{limit?}", w => w.Admin, QuotaResets),
        Route("* /vnc/{id:guid}", w => w.Anonymous, Tickets),

        // The web UI's form posts (every @page answers POST).
        Form("POST /signin", w => w.Anonymous, w => "/signin", ["signin"], "Form.Username", "Form.Password", "Form.Return"),
        Form("POST /signout", w => w.User, w => "/signout", ["signout"], "Form.Name"),
        Form("POST /register", w => w.Anonymous, w => "/register", ["register"], "Form.Username", "Form.Password"),
        Form("POST /", w => w.User, w => "/", ["probe"], "Form.Name"),
        Form("POST /vms", w => w.User, w => "/vms", ["vm-bulk"], "Bulk.Action", "Bulk.Ids"),
        Form("POST /vms/new", w => w.User, w => "/vms/new", ["create-vm"], "Form.Name", "Form.Vcpus", "Form.MemoryMb", "Form.DiskGb", "Form.ImageId"),
        Form("POST /vms/{id:guid}", w => w.User, w => $"/vms/{w.VmId}", ["snapshot-act", "snapshot-create", "vm-action", "vm-boot", "vm-cdrom", "vm-delete", "vm-migrate"], "Confirm.Name", "Action"),
        Form("POST /vms/{id:guid}/console", w => w.User, w => $"/vms/{w.VmId}/console", ["probe"], "Form.Name"),
        Form("POST /admin", w => w.Admin, w => "/admin", ["probe"], "Form.Name"),
        Form("POST /admin/users", w => w.Admin, w => "/admin/users", ["user-create"], "Form.Username", "Form.Password", "Form.Role"),
        Form("POST /admin/users/{id:guid}", w => w.Admin, w => $"/admin/users/{w.VictimId}", ["user-password", "user-quota", "user-quota-reset", "user-role", "user-status"], "Form.Disabled", "Form.Role", "Form.Password"),
        Form("POST /admin/registrations", w => w.Admin, w => "/admin/registrations", ["registration-switch", "registration-decision"], "Switch.Open", "Decision.Choice"),
        Form("POST /admin/quota", w => w.Admin, w => "/admin/quota", ["system-quota", "system-quota-reset"], "Form.MaxVms", "Form.MaxVcpus"),
        Form("POST /admin/sessions", w => w.Admin, w => "/admin/sessions", ["session-terminate"], "SessionId"),
        Form("POST /admin/alerts", w => w.Admin, w => "/admin/alerts", ["probe"], "Form.Name"),
        Form("POST /admin/audit", w => w.Admin, w => "/admin/audit", ["probe"], "Form.Name"),
        Form("POST /admin/backups", w => w.Admin, w => "/admin/backups", ["probe"], "Form.Name"),
        Form("POST /admin/backups/{id:guid}", w => w.Admin, w => $"/admin/backups/{Guid.NewGuid()}", ["probe"], "Form.Name"),
        Form("POST /admin/images", w => w.Admin, w => "/admin/images", ["image-delete"], "ImageId"),
    ];

    private static EndpointRecipe Body(string key, Func<HostileWorld, Principal> caller, Func<HostileWorld, string> path, params BodyField[] fields) =>
        Body(key, caller, path, strictMembers: true, fields: fields);

    private static EndpointRecipe Body(string key, Func<HostileWorld, Principal> caller, Func<HostileWorld, string> path, bool strictMembers, BodyField[] fields) =>
        new(key, caller, (w, e) => BodyCases(e.Method, path(w), fields.Select(f => f with { Good = Placeholders(w, f.Good) }).ToList(), strictMembers));

    /// <summary>Good values that name the world's objects: {image} (the registered image), {vm_name} (user's VM's name).</summary>
    private static string Placeholders(HostileWorld world, string good) => good
        .Replace("{image}", world.ImageId.ToString(), StringComparison.Ordinal)
        .Replace("{vm_name}", world.VmName, StringComparison.Ordinal);

    private static EndpointRecipe Route(string key, Func<HostileWorld, Principal> caller, Func<HostileWorld, ApiEndpoint, Gen<HostileCase>> cases, int[]? successes = null) =>
        new(key, caller, (w, e) => Gen.Select(cases(w, e), JunkBody()).Select((c, junk) => junk is null ? c : c with
        {
            Request = c.Request with { Body = junk.Value.Body, ContentType = junk.Value.ContentType },
            Parts = [.. c.Parts, new Hostile("junk body on a bodyless endpoint", "", false)],
        }), successes?.ToHashSet());

    /// <summary>
    /// Bodies: one or two wrong or doubtful values, members added, doubled, renamed or dropped,
    /// broken JSON, the wrong content type — at least one part wrong for sure.
    /// </summary>
    public static Gen<HostileCase> BodyCases(string method, string path, IReadOnlyList<BodyField> fields, bool strictMembers)
    {
        var member = MemberMutations(fields, strictMembers);
        var envelope = EnvelopeMutations();
        var main = Gen.Frequency((5, member), (3, envelope));
        var extra = Gen.Frequency((3, member), (1, envelope));
        return Gen.Select(main, extra.Array[0, 2]).Select((first, more) =>
        {
            // Within a stage the doubtful go first, so a definite change is never overwritten by a
            // doubtful one (a wrong content type by an unusual JSON one); a definite change that finds
            // nothing left to change (a member already renamed by an escape) is no longer definite.
            var mutations = new[] { first }.Concat(more).OrderBy(m => m.Stage).ThenBy(m => m.Part.Definite).ToList();
            var draft = new Draft(fields.Select(f => (JsonString(f.Name), f.Good)).ToList(), null, null, "application/json");
            var applied = new List<Mutation>();
            foreach (var mutation in mutations)
            {
                var before = draft.Snapshot();
                draft = mutation.Apply(draft);
                applied.Add(mutation.Part.Definite && draft.Snapshot() == before ? mutation with { Part = mutation.Part with { Definite = false } } : mutation);
            }

            // Text changes can undo each other ("empty body" then the tail "{}" is a plain empty object):
            // when the final text is still a well-formed JSON object, none of them is wrong for sure —
            // nor, when that text is no longer the members' own rendering, any change to the members.
            if (draft.Bytes is null && draft.Text is { } text && IsJsonObject(text))
            {
                var rewritten = text != draft.Render();
                applied = applied.Select(m => m.Stage == 4 || rewritten ? m with { Part = m.Part with { Definite = false } } : m).ToList();
            }

            // Where unknown members are skipped, a wrong value under a renamed member is skipped with it.
            var skipped = applied.Where(m => m.Renames is not null && !m.Part.Definite).Select(m => m.Renames).ToHashSet();
            var parts = applied.Select(m => m.Field is { } f && m.Renames is null && skipped.Contains(f) ? m.Part with { Definite = false } : m.Part).ToList();
            var request = new HostileRequest(method, path, draft.Bytes ?? Encoding.UTF8.GetBytes(draft.Text ?? draft.Render()), draft.ContentType);
            return new HostileCase(request, parts);
        }).Where(c => c.Definite);
    }

    /// <summary>A body under construction: its members (raw JSON name and value), then its text, then its bytes.</summary>
    private sealed record Draft(List<(string Name, string Value)> Members, string? Text, byte[]? Bytes, string? ContentType)
    {
        public string Render() => "{" + string.Join(",", Members.Select(m => $"{m.Name}:{m.Value}")) + "}";

        /// <summary>What would be sent, for telling whether a mutation changed anything.</summary>
        public string Snapshot() => $"{ContentType}|{(Bytes is null ? Text ?? Render() : Convert.ToHexString(Bytes))}";
    }

    /// <summary>
    /// A change to a draft: values change first (stage 0), then members are added or doubled (1),
    /// dropped (2) and renamed (3), then the text changes (4), the bytes (5), the headers (6). <paramref name="Field"/> is the member
    /// it touches; <paramref name="Renames"/> the member it renames.
    /// </summary>
    private sealed record Mutation(Hostile Part, int Stage, Func<Draft, Draft> Apply, string? Field = null, string? Renames = null);

    private static Gen<Mutation> MemberMutations(IReadOnlyList<BodyField> fields, bool strict)
    {
        var required = fields.Where(f => f.Required).ToList();
        var gens = new List<Gen<Mutation>>
        {
            Gen.Int[0, fields.Count - 1].SelectMany(i => fields[i].Bad.Select(bad =>
                new Mutation(bad with { Label = $"{fields[i].Name}: {bad.Label}" }, 0, d => d with { Members = Replace(d.Members, JsonString(fields[i].Name), bad.Value) }, fields[i].Name))),
            Gen.OneOf(
                ("\"is_admin\"", "true"), ("\"owner_id\"", JsonString(Guid.NewGuid().ToString())), ("\"id\"", JsonString(Guid.NewGuid().ToString())),
                ("\"__proto__\"", "{\"admin\":true}"), ("\"\"", "1"), ("\"name\\u0000\"", "\"x\""), ("\"constructor\"", "{}"),
                (JsonString(new string('k', 10_000)), "1"), ("\"role \"", "\"admin\"")).Select(u =>
                new Mutation(new Hostile("unknown member", u.Item1, strict), 1, d => d with { Members = [.. d.Members, u] })),
            Gen.Select(Gen.Int[0, fields.Count - 1], Gen.Bool).SelectMany((i, badSecond) => (badSecond ? fields[i].Bad : Gen.Const(new Hostile("", fields[i].Good, false))).Select(second =>
                new Mutation(new Hostile($"duplicate member {fields[i].Name}", second.Value, strict || second.Definite), 1,
                    d => d with { Members = [.. d.Members, (JsonString(fields[i].Name), second.Value)] }))),
            Gen.Select(Gen.Int[0, fields.Count - 1], Gen.Int[0, 5]).Select((i, how) =>
            {
                var name = fields[i].Name;
                var changed = how switch
                {
                    0 => name.ToUpperInvariant(),
                    1 => char.ToUpperInvariant(name[0]) + name[1..],
                    2 => string.Concat(name.Split('_').Select(s => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..])),
                    3 => name.Replace("_", "", StringComparison.Ordinal),
                    4 => name + " ",
                    _ => name.Replace("_", "-", StringComparison.Ordinal),
                };
                if (changed == name)
                {
                    changed = name.ToUpperInvariant() + "X";
                }

                return new Mutation(new Hostile($"member name changed ({name} as {changed})", changed, strict || fields[i].Required), 3,
                    d => d with { Members = d.Members.Select(m => m.Name == JsonString(name) ? (JsonString(changed), m.Value) : m).ToList() }, name, name);
            }),
            // The same name written with an escape is the same name: doubtful on purpose.
            Gen.Int[0, fields.Count - 1].Select(i => new Mutation(new Hostile("member name escaped", fields[i].Name, false), 3,
                d => d with { Members = d.Members.Select(m => m.Name == JsonString(fields[i].Name) ? ($"\"\\u{(int)fields[i].Name[0]:x4}{fields[i].Name[1..]}\"", m.Value) : m).ToList() })),
        };
        if (required.Count > 0)
        {
            gens.Add(Gen.Int[0, required.Count - 1].Select(i => new Mutation(new Hostile($"required member {required[i].Name} missing", required[i].Name, true), 2,
                d => d with { Members = d.Members.Where(m => m.Name != JsonString(required[i].Name)).ToList() })));
        }

        return Gen.OneOf(gens.ToArray());
    }

    private static List<(string Name, string Value)> Replace(List<(string Name, string Value)> members, string name, string value) =>
        members.Select(m => m.Name == name ? (m.Name, value) : m).ToList();

    private static Gen<Mutation> EnvelopeMutations() => Gen.OneOf(
        Gen.Int[1, 100_000].Select(at => new Mutation(new Hostile("truncated JSON", at.ToString(System.Globalization.CultureInfo.InvariantCulture), true), 4,
            d => d with { Text = Cut(d.Text ?? d.Render(), at) })),
        Gen.OneOf("[]", "\"text\"", "42", "null", "true", "[{}]").Select(root => new Mutation(new Hostile("not a JSON object", root, true), 4,
            d => d with { Text = root == "[{}]" ? "[" + d.Render() + "]" : root })),
        Gen.Const(new Mutation(new Hostile("empty body", "", true), 4, d => d with { Text = "" })),
        Gen.OneOf("}", ",", " x", "{}", "\0", "]").Select(tail => new Mutation(new Hostile("trailing garbage", tail, true), 4,
            d => d with { Text = (d.Text ?? d.Render()) + tail })),
        Gen.Const(new Mutation(new Hostile("comment in JSON", "/* */", true), 4, d => d with { Text = "/* hostile */" + (d.Text ?? d.Render()) })),
        Gen.Const(new Mutation(new Hostile("trailing comma", ",}", true), 4, d => d with { Text = (d.Text ?? d.Render()).TrimEnd('}') + ",}" })),
        Gen.Const(new Mutation(new Hostile("single-quoted JSON", "'", true), 4, d => d with { Text = (d.Text ?? d.Render()).Replace('"', '\'') })),
        Gen.Int[0, 1000].Select(at => new Mutation(new Hostile("deeply nested value", "[[[…]]]", true), 4, d =>
        {
            var text = d.Text ?? d.Render();
            var colon = text.IndexOf(':', StringComparison.Ordinal);
            return colon < 0 ? d with { Text = new string('[', 200) + new string(']', 200) }
                : d with { Text = text[..(colon + 1)] + new string('[', 200 + at) + new string(']', 200 + at) + "," + text[(colon + 1)..] };
        })),
        Gen.OneOf(new byte[] { 0xff }, [0xc3, 0x28], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xc0, 0xaf]).Select(bytes =>
            new Mutation(new Hostile("invalid UTF-8", Convert.ToHexString(bytes), true), 5, d =>
            {
                var text = Encoding.UTF8.GetBytes(d.Text ?? d.Render());
                var quote = Array.IndexOf(text, (byte)'"', Math.Min(text.Length, 2));
                var at = quote < 0 ? text.Length / 2 : quote + 1;
                return d with { Bytes = [.. text[..at], .. bytes, .. text[at..]] };
            })),
        Gen.OneOf<string?>(null, "text/plain", "application/xml", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
            "application/jsonx", "json", "application/octet-stream").Select(type =>
            new Mutation(new Hostile("wrong content type", type ?? "none", true), 6, d => d with { ContentType = type })),
        Gen.OneOf("application/json; charset=utf-8", "Application/JSON", "application/merge-patch+json").Select(type =>
            new Mutation(new Hostile("unusual JSON content type", type, false), 6, d => d with { ContentType = type })),
        Gen.Const(new Mutation(new Hostile("byte order mark", "EF BB BF", false), 5,
            d => d with { Bytes = [0xef, 0xbb, 0xbf, .. d.Bytes ?? Encoding.UTF8.GetBytes(d.Text ?? d.Render())] })));

    private static bool IsJsonObject(string text)
    {
        try
        {
            using var document = System.Text.Json.JsonDocument.Parse(text);
            return document.RootElement.ValueKind == System.Text.Json.JsonValueKind.Object;
        }
        catch (System.Text.Json.JsonException)
        {
            return false;
        }
    }

    private static string Cut(string text, int at) => text.Length <= 1 ? "" : text[..(1 + (at % (text.Length - 1)))];

    /// <summary>Uploads: a hostile name or kind in the query, arbitrary bytes as the image.</summary>
    private static EndpointRecipe Upload() => new("POST /api/admin/images/upload", w => w.Admin, (w, e) =>
    {
        var name = Gen.OneOf(
            Gen.OneOf(Controls).Select(c => new Hostile("control character in a name", "up" + c + "load", true)),
            Hostile.Wrong("whitespace around a name", "upload\n", " upload", "upload "),
            Hostile.Wrong("empty or overlong name", "", " ", new string('n', 65)),
            Hostile.Maybe("markup in a name", Markup),
            Gen.Const(new Hostile("fine name", "upload-ok", false)));
        var kind = Gen.OneOf(
            Hostile.Wrong("kind not in the set", "", "DISK", "disk ", "iso\0", "qcow2", "raw", "../iso"),
            Gen.OneOf("disk", "iso").Select(k => new Hostile("fine kind", k, false)));
        return Gen.Select(name, kind, Gen.Byte.Array[0, 4096], Gen.Bool).Select((n, k, bytes, omitName) =>
        {
            var query = (omitName ? "" : "name=" + Uri.EscapeDataString(n.Value) + "&") + "kind=" + Uri.EscapeDataString(k.Value);
            var parts = new List<Hostile> { omitName ? new Hostile("name missing", "", true) : n, k };
            return new HostileCase(new HostileRequest("POST", "/api/admin/images/upload?" + query, bytes, "application/octet-stream"), parts);
        }).Where(c => c.Definite);
    });

    /// <summary>
    /// A page's form post as another origin could send it: without the page's anti-forgery token
    /// (it cannot read the page), with the page's form names or others, hostile field values and
    /// content types. Every one is refused and changes nothing.
    /// </summary>
    private static EndpointRecipe Form(string key, Func<HostileWorld, Principal> caller, Func<HostileWorld, string> path, string[] formNames, params string[] fields) =>
        new(key, caller, (w, e) =>
        {
            var handler = Gen.OneOf(formNames.Concat(["", "probe", "register ", "REGISTER", "signin", new string('h', 3000)]).ToArray());
            var value = Gen.OneOf(Markup.Concat(Controls).Concat(
                ["true", "false", "approve:" + w.PendingId, "reject:" + w.PendingId, "approve:" + w.VictimId, "h-victim", "", new string('v', 100_000)]).ToArray());
            var type = Gen.OneOf<string?>(AccessRules.FormType, AccessRules.FormType, "multipart/form-data; boundary=x", "text/plain", "application/json", null);
            return Gen.Select(handler, Gen.Int[0, fields.Length - 1], value, type).Select((h, i, v, t) =>
            {
                var body = $"_handler={Uri.EscapeDataString(h)}&{fields[i]}={Uri.EscapeDataString(v)}";
                return new HostileCase(new HostileRequest("POST", path(w), Encoding.UTF8.GetBytes(body), t),
                    [new Hostile("form post without the anti-forgery token", h, true), new Hostile("form value", v, false)]);
            });
        });

    /// <summary>A body that bodyless endpoints ought to ignore (null: none).</summary>
    private static Gen<(byte[] Body, string? ContentType)?> JunkBody() => Gen.Frequency(
        (3, Gen.Const<(byte[], string?)?>(((byte[], string?)?)null)),
        (1, Gen.Select(Gen.OneOf("{\"id\":\"00000000-0000-0000-0000-000000000000\"}", "not json", "{\"force\":true}", "\0\0\0", "[]"),
            Gen.OneOf<string?>("application/json", "text/plain", null))
            .Select((body, type) => ((byte[], string?)?)(Encoding.UTF8.GetBytes(body), type))));

    /// <summary>A route value for an object id: a GUID of nothing in any format, or text that is no GUID at all.</summary>
    private static Gen<Hostile> Nothing() => Gen.OneOf(
        Gen.Select(Gen.Guid, Gen.OneOf("D", "N", "B", "P")).Select((g, format) => new Hostile($"id of nothing ({format} format)", g.ToString(format), true)),
        Gen.Guid.Select(g => new Hostile("id of nothing, upper case", g.ToString().ToUpperInvariant(), true)),
        Gen.Const(new Hostile("empty GUID", Guid.Empty.ToString(), true)),
        // Never "." or "..": the client and Kestrel resolve dot segments, and ".../snapshots/.." is the VM itself.
        Gen.OneOf(Markup.Concat(["not-a-guid", "%2e%2e", " ", new string('9', 3000)]).ToArray())
            .Select(s => new Hostile("text that is no GUID", Uri.EscapeDataString(s), true)),
        Gen.OneOf("%00", "a%00b", Guid.Empty + "%00", "%0a", "%0d%0a", "%c0%af", "%ff", "%25").Select(s => new Hostile("escaped control byte in the path", s, true)));

    private static Guid LocalHost(HostileWorld world) => world.Server.Services.GetRequiredService<Limen.Features.Hosts.HostRegistry>().Local.Id;

    private static Gen<Hostile> Own(string label, Guid id) => Gen.Const(new Hostile(label, id.ToString(), true));

    /// <summary>Cases for an endpoint whose only route value is one object id.</summary>
    private static Gen<HostileCase> Ids(ApiEndpoint endpoint, params Gen<Hostile>[] ids)
    {
        var parameter = endpoint.RouteParameters.Single();
        return Gen.Frequency((4, ids[0]), (1, ids[1])).Select(id =>
            new HostileCase(new HostileRequest(endpoint.Method, endpoint.Path(new Dictionary<string, string> { [parameter] = id.Value })), [id]));
    }

    /// <summary>VM actions: the VM's own id with a word that is no action, or a real action on a VM that is not the caller's.</summary>
    private static Gen<HostileCase> Actions(HostileWorld world, ApiEndpoint endpoint) => Gen.Frequency(
        (3, Gen.OneOf(
                Gen.OneOf(Markup.Concat(["", " ", "START", "Start", "start ", "start\n", "destroy", "delete", "migrate", "undefine", new string('s', 5000)]).ToArray())
                    .Where(a => a.Trim().Length > 0).Select(a => new Hostile("word that is no action", Uri.EscapeDataString(a), true)),
                Gen.OneOf("start%00", "%00", "st%0aart").Select(a => new Hostile("escaped control byte in the action", a, true)))
            .Select(a => new HostileCase(new HostileRequest("POST", endpoint.Path(new Dictionary<string, string>
            {
                ["id"] = world.VmId.ToString(), ["action"] = a.Value,
            })), [a]))),
        (2, Gen.Select(Gen.Frequency((3, Nothing()), (1, Own("other's VM", world.OtherVmId))), Gen.OneOf("start", "stop", "shutdown", "reboot", "suspend", "resume"))
            .Select((id, action) => new HostileCase(new HostileRequest("POST", endpoint.Path(new Dictionary<string, string>
            {
                ["id"] = id.Value, ["action"] = action,
            })), [id]))));

    /// <summary>Snapshot routes: user's VM with a snapshot of nothing or of other's VM, or other's VM altogether.</summary>
    private static Gen<HostileCase> Snapshots(HostileWorld world, ApiEndpoint endpoint) => Gen.OneOf(
        Nothing().Select(sid => (new Hostile("user's VM", world.VmId.ToString(), false), sid)),
        Gen.Const((new Hostile("user's VM", world.VmId.ToString(), false), new Hostile("other's snapshot", world.OtherSnapshotId.ToString(), true))),
        Gen.Const((new Hostile("other's VM", world.OtherVmId.ToString(), true), new Hostile("other's snapshot", world.OtherSnapshotId.ToString(), true))),
        Gen.Const((new Hostile("other's VM", world.OtherVmId.ToString(), true), new Hostile("user's snapshot", world.SnapshotId.ToString(), true))),
        Nothing().Select(id => (id, new Hostile("user's snapshot", world.SnapshotId.ToString(), false))))
        .Select(pair => new HostileCase(new HostileRequest(endpoint.Method, endpoint.Path(new Dictionary<string, string>
        {
            ["id"] = pair.Item1.Value, ["sid"] = pair.Item2.Value,
        })), [pair.Item1, pair.Item2]));

    /// <summary>Quota resets: a limit name that is none (any spelling but the exact one), or a user that does not exist.</summary>
    private static Gen<HostileCase> QuotaResets(HostileWorld world, ApiEndpoint endpoint)
    {
        var limit = Gen.OneOf(
            Gen.OneOf(Markup.Concat(["MAX_VMS", "Max_Vms", "max_vms ", "max-vms", "maxvms", "limits", "max_anything", new string('m', 3000)]).ToArray())
                .Select(l => new Hostile("word that is no limit", Uri.EscapeDataString(l), true)),
            Gen.OneOf("max_vms%00", "%00", "max_vms%0a").Select(l => new Hostile("escaped control byte in the limit", l, true)));
        if (!endpoint.RouteParameters.Contains("id"))
        {
            return limit.Select(l => new HostileCase(new HostileRequest("DELETE", endpoint.Path(new Dictionary<string, string> { ["limit"] = l.Value })), [l]));
        }

        return Gen.OneOf(
            limit.Select(l => new HostileCase(new HostileRequest("DELETE", endpoint.Path(new Dictionary<string, string>
            {
                ["id"] = world.VictimId.ToString(), ["limit"] = l.Value,
            })), [l])),
            Gen.Select(Nothing(), Gen.OneOf("", "max_vms")).Select((id, l) => new HostileCase(new HostileRequest("DELETE", endpoint.Path(new Dictionary<string, string>
            {
                ["id"] = id.Value, ["limit"] = l,
            })), [id])));
    }

    /// <summary>Refresh-token cookies that are no refresh token.</summary>
    private static Func<HostileWorld, ApiEndpoint, Gen<HostileCase>> Cookies(string path) => (world, endpoint) => Gen.OneOf(
        Gen.Const(new Hostile("no cookie", "", true)),
        Gen.String[Gen.Char.AlphaNumeric, 0, 200].Select(s => new Hostile("random refresh cookie", "limen_refresh=" + s, true)),
        Gen.OneOf(Markup.Concat(Controls).Concat([new string('c', 4000)]).ToArray()).Select(s => new Hostile("hostile refresh cookie", "limen_refresh=" + Uri.EscapeDataString(s), true)),
        Gen.Const(new Hostile("two refresh cookies", "limen_refresh=a; limen_refresh=b", true)),
        Gen.Const(new Hostile("empty refresh cookie", "limen_refresh=", true)))
        .Select(cookie => new HostileCase(new HostileRequest("POST", path, Headers: cookie.Value.Length == 0 ? null : new Dictionary<string, string> { ["Cookie"] = cookie.Value }), [cookie]));

    /// <summary>The console WebSocket: handshakes with tickets that are no ticket, and requests that are no handshake.</summary>
    private static Gen<HostileCase> Tickets(HostileWorld world, ApiEndpoint endpoint)
    {
        var ticket = Gen.OneOf(
            Gen.Const(new Hostile("no ticket", "", true)),
            Gen.String[Gen.Char.AlphaNumeric, 1, 200].Select(s => new Hostile("random ticket", s, true)),
            Gen.OneOf(Markup.Concat(Controls).Concat([new string('t', 4000), "%00", "+/="]).ToArray()).Select(s => new Hostile("hostile ticket", s, true)));
        var vm = Gen.OneOf(Own("user's VM", world.VmId), Nothing());
        var handshake = new Dictionary<string, string>
        {
            ["Connection"] = "Upgrade", ["Upgrade"] = "websocket", ["Sec-WebSocket-Version"] = "13",
            ["Sec-WebSocket-Key"] = Convert.ToBase64String(Guid.NewGuid().ToByteArray()),
        };
        return Gen.Select(ticket, vm, Gen.OneOf("GET", "GET", "GET", "POST", "PUT", "DELETE", "PATCH")).Select((t, id, method) =>
        {
            var path = endpoint.Path(new Dictionary<string, string> { ["id"] = id.Value }) + (t.Value.Length == 0 ? "" : "?ticket=" + Uri.EscapeDataString(t.Value));
            return new HostileCase(new HostileRequest(method, path, Headers: method == "GET" ? handshake : null), [t, id]);
        });
    }
}
