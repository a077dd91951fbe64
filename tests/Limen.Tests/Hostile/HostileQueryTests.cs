using System.Globalization;
using CsCheck;

namespace Limen.Tests.Hostile;

/// <summary>What a generated query value must get: 200 (valid), a 4xx naming the parameter (invalid), or either.</summary>
public enum Verdict
{
    Valid,
    Invalid,
    Either,
}

public sealed record QueryValue(string Label, string Value, Verdict Verdict);

/// <summary>
/// Property: every query parameter of every GET endpoint (read from the handlers' parameters),
/// 200 generated values each — valid ones answer 200, invalid ones a 4xx problem naming the
/// parameter, none a 5xx, all with X-Request-Id, and nothing changes.
/// </summary>
public sealed class HostileQueryTests(HostileWorld world) : IClassFixture<HostileWorld>
{
    public const int CasesPerParameter = 200;

    /// <summary>The GET endpoints that take query parameters; checked against the endpoint table below.</summary>
    public static readonly string[] QueriedKeys = ["GET /api/admin/registrations/", "GET /api/admin/users/", "GET /api/alerts/", "GET /api/audit", "GET /api/console/sessions/", "GET /api/events", "GET /api/vms/", "* /vnc/{id:guid}"];

    public static TheoryData<string> Queried => new(QueriedKeys);

    [Fact]
    public void Every_get_endpoint_with_query_parameters_is_probed()
    {
        var actual = world.Endpoints.Where(e => e.Method is "GET" or ApiEndpoint.AnyMethod && e.QueryParameters.Count > 0).Select(e => e.Key).Order(StringComparer.Ordinal);
        Assert.Equal(QueriedKeys.Order(StringComparer.Ordinal), actual);
    }

    [Theory]
    [MemberData(nameof(Queried))]
    public async Task Every_query_parameter_takes_hostile_values_without_a_5xx_or_a_change(string key)
    {
        var endpoint = world.Endpoints.Single(e => e.Key == key);
        var websocket = AccessRules.Find(key)?.Access == Access.ConsoleTicket;
        var caller = websocket ? world.Anonymous : world.Admin;
        var path = await world.PathAsync(endpoint, Objects.Shared);
        var failures = new FailureClasses(key);
        Assert.NotEmpty(endpoint.QueryParameters);
        foreach (var parameter in endpoint.QueryParameters)
        {
            // A GET changes nothing whatever its query: one comparison per parameter keeps 200 cases cheap.
            var before = await world.CaptureAsync();
            Exchange? lastExchange = null;
            var values = websocket ? Tickets() : For(parameter);
            await values.SampleAsync(async value =>
            {
                var request = new HostileRequest("GET", $"{path}?{parameter.Name}={value.Value}", Headers: websocket ? Handshake() : null);
                var exchange = await Exchange.SendAsync(caller, request);
                var violations = exchange.ContractViolations().ToList();
                var expected = websocket ? 401 : 200;
                if (value.Verdict == Verdict.Valid && exchange.Status != expected)
                {
                    violations.Add($"a valid {parameter.Name} was not answered {expected}");
                }

                if (value.Verdict == Verdict.Invalid && exchange.Status is < 400 or >= 500)
                {
                    violations.Add($"an invalid {parameter.Name} was accepted");
                }

                if (exchange.Status is >= 400 and < 500 && !websocket && exchange.ProblemField is { } field && field.TrimStart('$', '.') != parameter.Name)
                {
                    violations.Add($"the problem names field '{field}', not {parameter.Name}");
                }

                lastExchange = exchange;
                failures.Record(new HostileCase(request, [new Hostile($"{parameter.Name}: {value.Label} ({value.Verdict})", value.Value, value.Verdict == Verdict.Invalid)]),
                    exchange, violations);
            }, iter: CasesPerParameter, threads: 1);
            var changes = (await world.CaptureAsync()).ChangesSince(before);
            if (changes.Count > 0)
            {
                failures.Note($"{CasesPerParameter} requests with hostile {parameter.Name} values changed {string.Join("; ", changes)} (last: {lastExchange})");
            }
        }

        Assert.Equal(CasesPerParameter * endpoint.QueryParameters.Count, failures.Cases);
        failures.AssertNone();
    }

    /// <summary>Values by the parameter's type (and, for paging, its name); a parameter of another type fails until it gets one.</summary>
    private static Gen<QueryValue> For(QueryParameter parameter)
    {
        var type = Nullable.GetUnderlyingType(parameter.Type) ?? parameter.Type;
        var values = (type, parameter.Name) switch
        {
            _ when type == typeof(int) && parameter.Name == "page" => Paging(1, int.MaxValue),
            _ when type == typeof(int) && parameter.Name == "page_size" => Paging(1, 200),
            // Event ids: any whole number of 0 or more is valid (beyond the stream's end it answers a reset).
            _ when type == typeof(long) => Gen.OneOf(
                Gen.Long[0, long.MaxValue].Select(v => new QueryValue("0 or more", v.ToString(CultureInfo.InvariantCulture), Verdict.Valid)),
                Gen.Long[long.MinValue, -1].Select(v => new QueryValue("negative", v.ToString(CultureInfo.InvariantCulture), Verdict.Invalid)),
                Wrong("not a long", "9223372036854775808", "1.5", "1e3", "abc", "0x10", "%00", "1%00", "NaN"),
                Either("doubtful long", "", " 1", "+1", "01", "1 ")),
            _ when type == typeof(Guid) => Gen.OneOf(
                Gen.Guid.Select(g => new QueryValue("a GUID", g.ToString(), Verdict.Valid)),
                Wrong("no GUID", "not-a-guid", "1", "00000000-0000-0000-0000-00000000000g", "'; DROP TABLE vms; --"),
                Gen.Guid.Select(g => new QueryValue("GUID with a control character", Uri.EscapeDataString(g + "\0"), Verdict.Invalid)),
                Either("doubtful GUID", "", Guid.NewGuid().ToString("N"), "{" + Guid.NewGuid() + "}")),
            _ when type == typeof(bool) => Gen.OneOf(
                Gen.OneOf("true", "false", "True", "FALSE").Select(v => new QueryValue("a boolean", v, Verdict.Valid)),
                Wrong("no boolean", "yes", "no", "2", "truee", "on", "%00"),
                Either("doubtful boolean", "", "1", "0", " true")),
            _ when type == typeof(DateTimeOffset) => Gen.OneOf(
                Gen.Select(Gen.Int[0, 3_000_000], Gen.OneOf("Z", "+00:00", "+14:00", "-12:00", "+05:30", "-09:30", "+01:00")).Select((minutes, offset) =>
                    new QueryValue("ISO 8601 date-time", Uri.EscapeDataString(new DateTime(2024, 1, 1).AddMinutes(minutes).ToString("yyyy-MM-ddTHH:mm:ss", CultureInfo.InvariantCulture) + offset), Verdict.Valid)),
                Wrong("no date-time", "yesterday", "2024-13-01T00:00:00Z", "2024-01-01T25:00:00Z", "2024-01-01T00:00:00+25:00", "%00", "9999-99-99"),
                Either("doubtful date-time", "2024-01-01", "1700000000", "", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2024-01-01T00:00:00.1234567%2B14:00")),
            _ when type == typeof(string) => Gen.OneOf(
                Gen.Select(Gen.OneOf(HostileValues.Controls), Gen.String[Gen.Char.AlphaNumeric, 0, 20])
                    .Select((c, s) => new QueryValue("control character in a filter", Uri.EscapeDataString(s + c + s), Verdict.Invalid)),
                Gen.OneOf(HostileValues.Markup).Select(m => new QueryValue("markup or shell", Uri.EscapeDataString(m), Verdict.Either)),
                Gen.String[Gen.Char.AlphaNumeric, 0, 2000].Select(s => new QueryValue("long plain text", s, Verdict.Either)),
                Gen.OneOf("\ud800", "a\udfffb").Select(s => new QueryValue("lone surrogate", "%ED%A0%80" + (s.Length > 1 ? "b" : ""), Verdict.Either))),
            _ => throw new InvalidOperationException($"No hostile values for query parameter {parameter.Name} of type {type.Name}: add them here."),
        };
        return values;
    }

    /// <summary>A paging number in [min, max]: numbers beyond int, signs, fractions, words; huge pages may be refused or empty.</summary>
    private static Gen<QueryValue> Paging(int min, int max) => Gen.OneOf(
        Gen.Int[min, Math.Min(max, 1000)].Select(v => new QueryValue("in range", v.ToString(CultureInfo.InvariantCulture), Verdict.Valid)),
        Gen.Int[int.MinValue, min - 1].Select(v => new QueryValue("below range", v.ToString(CultureInfo.InvariantCulture), Verdict.Invalid)),
        max < int.MaxValue
            ? Gen.Int[max + 1, int.MaxValue].Select(v => new QueryValue("above range", v.ToString(CultureInfo.InvariantCulture), Verdict.Invalid))
            : Gen.Int[int.MaxValue - 1000, int.MaxValue].Select(v => new QueryValue("near int.MaxValue", v.ToString(CultureInfo.InvariantCulture), Verdict.Either)),
        Wrong("not an int", "2147483648", "-2147483649", "99999999999999999999", "1.5", "1e3", "abc", "0x10", "%00", "1%00", "NaN"),
        Either("doubtful int", "", " 1", "+1", "01", "1 "));

    private static Gen<QueryValue> Wrong(string label, params string[] values) => Gen.OneOf(values).Select(v => new QueryValue(label, v, Verdict.Invalid));

    private static Gen<QueryValue> Either(string label, params string[] values) => Gen.OneOf(values).Select(v => new QueryValue(label, v, Verdict.Either));

    /// <summary>Tickets that are none: any value is refused with 401 on a real handshake.</summary>
    private static Gen<QueryValue> Tickets() => Gen.OneOf(
        Gen.String[Gen.Char.AlphaNumeric, 0, 300].Select(s => new QueryValue("random ticket", s, Verdict.Valid)),
        Gen.OneOf(HostileValues.Markup.ToArray()).Select(s => new QueryValue("markup ticket", Uri.EscapeDataString(s), Verdict.Valid)),
        // Control characters break the input policy before any ticket is looked up: a 400, not a 401.
        Gen.OneOf(HostileValues.Controls.ToArray()).Select(s => new QueryValue("control-character ticket", Uri.EscapeDataString(s), Verdict.Invalid)),
        Gen.Const(new QueryValue("long ticket", new string('t', 4000), Verdict.Valid)));

    private static Dictionary<string, string> Handshake() => new()
    {
        ["Connection"] = "Upgrade", ["Upgrade"] = "websocket", ["Sec-WebSocket-Version"] = "13",
        ["Sec-WebSocket-Key"] = Convert.ToBase64String(Guid.NewGuid().ToByteArray()),
    };
}
