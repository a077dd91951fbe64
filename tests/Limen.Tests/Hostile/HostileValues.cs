using System.Globalization;
using System.Text;
using CsCheck;

namespace Limen.Tests.Hostile;

/// <summary>
/// A generated piece of input and whether it is wrong for sure. A case is only sent when at least
/// one of its parts is <see cref="Definite"/>: then the whole request must be refused (4xx) and
/// change nothing. Parts that may be acceptable (markup in a description) ride along on such cases.
/// </summary>
public sealed record Hostile(string Label, string Value, bool Definite)
{
    public static Gen<Hostile> Wrong(string label, params string[] values) => Gen.OneOf(values).Select(v => new Hostile(label, v, true));

    public static Gen<Hostile> Maybe(string label, params string[] values) => Gen.OneOf(values).Select(v => new Hostile(label, v, false));
}

/// <summary>Strings and JSON values that have broken servers before, and the JSON text to carry them.</summary>
public static class HostileValues
{
    /// <summary>Control characters; names may hold none, free text keeps only newline and tab.</summary>
    public static readonly string[] Controls = ["\0", "\u0001", "\u0007", "\b", "\u000b", "\u000c", "\u001b", "\u001f", "\u007f", "\u0085", "\u009f"];

    public static readonly string[] Markup =
    [
        "<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>", "$(id)", "`id`", "; rm -rf / ;", "| cat /etc/passwd",
        "../../etc/passwd", "%00", "%s%s%n", "{{7*7}}", "${jndi:ldap://127.0.0.1/x}", "' OR '1'='1", "'; DROP TABLE vms; --",
        "\u202egnp.exe", "a\u200bb", "\ufeffbom", "Ω≈ç√", "😀", "ﷺ", "null", "undefined", "NaN", "-1", "0x7fffffff",
    ];

    /// <summary>A JSON string literal that escapes everything outside printable ASCII, so lone surrogates survive as \uXXXX.</summary>
    public static string JsonString(string value)
    {
        var text = new StringBuilder("\"");
        foreach (var c in value)
        {
            text.Append(c switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                _ when c < 0x20 || c >= 0x7f => $"\\u{(int)c:x4}",
                _ => c.ToString(),
            });
        }

        return text.Append('"').ToString();
    }

    public static string[] Json(IEnumerable<string> values) => values.Select(JsonString).ToArray();

    /// <summary>Inserts <paramref name="bad"/> at the start, in the middle or at the end of <paramref name="good"/>.</summary>
    private static Gen<Hostile> Spliced(string label, string good, string[] bad) =>
        Gen.Select(Gen.OneOf(bad), Gen.Int[0, 2]).Select((b, at) => new Hostile(label,
            JsonString(at switch { 0 => b + good, 1 => good[..(good.Length / 2)] + b + good[(good.Length / 2)..], _ => good + b }), true));

    /// <summary>Every JSON type but a string, and null when the member may not be null.</summary>
    private static Gen<Hostile> NotAString(bool nullable) =>
        Hostile.Wrong("not a string", nullable ? ["1", "-1.5", "true", "[]", "{}", "[\"x\"]", "{\"x\":1}"] : ["1", "-1.5", "true", "[]", "{}", "[\"x\"]", "null"]);

    private static readonly string[] LoneSurrogates = ["\ud800", "\udfff", "a\ud83dz"];

    /// <summary>A hostname-like name (VMs, snapshots, usernames): only [A-Za-z0-9._-], so markup is wrong here for sure.</summary>
    public static Gen<Hostile> RestrictedName(string good, int maxLength, bool nullable) => Gen.OneOf(
        Spliced("control character in a name", good, Controls),
        Spliced("lone surrogate in a name", good, LoneSurrogates),
        Hostile.Wrong("whitespace around a name", Json([good + "\n", good + "\r\n", " " + good, good + " ", "\t" + good, good + "\u00a0"])),
        // Not "-1", "NaN" and the like: appended to a name they make another valid name.
        Hostile.Wrong("markup or shell in a name", Json(Markup.Where(m => !m.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-')).Select(m => good + m))),
        Hostile.Wrong("empty or blank name", Json(["", " ", "\n"])),
        Hostile.Wrong("overlong name", JsonString(new string('a', maxLength + 1)), JsonString(new string('a', 100_000))),
        Hostile.Wrong("name with a path", Json(["a/b", "a\\b", "..", "-lead", ".lead", "a b", "vm-ä"])),
        NotAString(nullable));

    /// <summary>A name of free printable text (image names): markup may be fine, control characters never.</summary>
    public static Gen<Hostile> PrintableName(string good, int maxLength) => Gen.OneOf(
        Spliced("control character in a name", good, Controls),
        Spliced("lone surrogate in a name", good, LoneSurrogates),
        Hostile.Wrong("whitespace around a name", Json([good + "\n", " " + good, good + " ", good + "\r"])),
        Hostile.Wrong("empty or blank name", Json(["", " ", "\t"])),
        Hostile.Wrong("overlong name", JsonString(new string('n', maxLength + 1))),
        Hostile.Maybe("markup or shell in a name", Json(Markup)),
        NotAString(false));

    /// <summary>Free text (descriptions): newline and tab are fine, other control characters are not.</summary>
    public static Gen<Hostile> FreeText(int maxLength) => Gen.OneOf(
        Spliced("control character in free text", "some text", Controls.Where(c => c is not ("\n" or "\t")).ToArray()),
        Spliced("lone surrogate in free text", "some text", LoneSurrogates),
        Hostile.Wrong("overlong free text", JsonString(new string('d', maxLength + 1)), JsonString(new string('d', 200_000))),
        Hostile.Maybe("markup, shell or unicode in free text", Json(Markup.Concat(["line\nbreak", "tab\there", "cr\rlf", ""]))),
        NotAString(true));

    /// <summary>A password: any printable text of a length in range.</summary>
    public static Gen<Hostile> Password() => Gen.OneOf(
        Hostile.Wrong("password too short", Json(["", "short", "elevenchars"])),
        Hostile.Wrong("password too long", JsonString(new string('p', 257)), JsonString(new string('p', 1_000_000 / 4))),
        Spliced("lone surrogate in a password", "a long enough password", LoneSurrogates),
        Hostile.Maybe("odd password", Json(Markup.Select(m => "a long enough password " + m).Concat(Controls.Select(c => "a long enough password" + c)))),
        NotAString(false));

    /// <summary>An integer member in [min, max]: out of range, not an integer, not a number, or a number in a string.</summary>
    public static Gen<Hostile> WholeNumber(long min, long max, bool nullable)
    {
        // Negative numbers are always out of range below; every integer member here starts at 0 or above.
        ArgumentOutOfRangeException.ThrowIfNegative(min);
        var outside = new List<string> { "2147483648", "-2147483649", "9223372036854775808", "1e20", "-1e20", "1e400", "-1e400" };
        if (min > int.MinValue)
        {
            outside.AddRange([(min - 1).ToString(CultureInfo.InvariantCulture), int.MinValue.ToString(CultureInfo.InvariantCulture)]);
        }

        if (max < int.MaxValue)
        {
            outside.AddRange([(max + 1).ToString(CultureInfo.InvariantCulture), int.MaxValue.ToString(CultureInfo.InvariantCulture)]);
        }

        return Gen.OneOf(
            Hostile.Wrong("integer out of range", outside.ToArray()),
            Gen.Long[long.MinValue, -1].Select(v => new Hostile("integer out of range", v.ToString(CultureInfo.InvariantCulture), true)),
            Gen.Long[Math.Max(max, int.MaxValue) + 1L, long.MaxValue].Select(v => new Hostile("integer out of range", v.ToString(CultureInfo.InvariantCulture), true)),
            Hostile.Wrong("not an integer", "1.5", "0.5", "-0.1", "1.0000001"),
            Hostile.Wrong("number as a string", Json(["7", "1", "0", "-1", "1e3", " 1", "0x10", "NaN", "Infinity", ""])),
            Hostile.Wrong("not valid JSON number", "NaN", "Infinity", "-Infinity", "01", "+1", "1.", ".5", "0x10", "1_000"),
            Hostile.Wrong("not a number", nullable ? ["true", "false", "[]", "{}", "[1]", "{\"value\":1}"] : ["true", "false", "[]", "{}", "[1]", "null"]));
    }

    public static Gen<Hostile> Boolean(bool nullable) => Gen.OneOf(
        Hostile.Wrong("boolean as a string or number", Json(["true", "false", "yes", "1", ""]).Concat(["1", "0", "-1", "0.0"]).ToArray()),
        Hostile.Wrong("not valid JSON literal", "True", "FALSE", "tru", "nul"),
        Hostile.Wrong("not a boolean", nullable ? ["[]", "{}", "[true]"] : ["[]", "{}", "[true]", "null"]));

    /// <summary>An id that must name an existing object: malformed, or well-formed and naming nothing.</summary>
    public static Gen<Hostile> Reference() => Gen.OneOf(
        Hostile.Wrong("malformed id", Json(["not-a-guid", "", "1", "00000000-0000-0000-0000-00000000000g", "'; DROP TABLE images; --"])),
        Gen.Guid.Select(g => new Hostile("id of nothing", JsonString(g.ToString()), true)),
        Gen.Guid.Select(g => new Hostile("id of nothing", JsonString(g.ToString("B")), true)),
        Gen.Guid.Select(g => new Hostile("id with a control character", JsonString(g + "\0"), true)),
        Hostile.Wrong("not a string", "123", "true", "[]", "{}", "null"));

    /// <summary>One of a fixed set of words: any other word, another case, padding, or another type.</summary>
    public static Gen<Hostile> Word(bool nullable, params string[] allowed) => Gen.OneOf(
        Hostile.Wrong("word not in the set", Json(allowed.SelectMany(a => new[] { a.ToUpperInvariant(), " " + a, a + " ", a + "\n", a + "\0", a + "s" })
            .Concat(["", "root", "superuser", "*", "null"]).Where(w => !allowed.Contains(w)))),
        Spliced("control character in a word", allowed[0], Controls),
        Hostile.Wrong("not a string", nullable ? ["1", "true", "[]", "{}"] : ["1", "true", "[]", "{}", "null"]));

    /// <summary>The boot-order list: a non-empty list of "hd" and "cdrom", each at most once.</summary>
    public static Gen<Hostile> Devices() => Gen.OneOf(
        Hostile.Wrong("bad device list", "[]", "[1]", "[null]", "[\"floppy\"]", "[\"hd\",\"hd\"]", "[\"HD\"]", "[[\"hd\"]]", "[\"cdrom\",\"hd\",\"hd\"]",
            "[\"hd\\u0000\"]", "[\"hd\",\"cdrom\",\"net\"]", "[" + string.Join(",", Enumerable.Repeat("\"hd\"", 10_000)) + "]"),
        Hostile.Wrong("not a list", "\"hd\"", "{}", "null", "1", "true"));

    /// <summary>Alertmanager's alerts array: empty, of the wrong type, or with an alert that breaks a rule.</summary>
    public static Gen<Hostile> Alerts(string goodAlerts) => Gen.OneOf(
        Hostile.Wrong("bad alerts list", "[]", "\"x\"", "[null]", "[{}]", "null", "{}", "[1]"),
        Hostile.Wrong("alert breaking a rule",
            goodAlerts.Replace("abcdef0123456789", "zz-not-hex", StringComparison.Ordinal),
            goodAlerts.Replace("abcdef0123456789", new string('a', 65), StringComparison.Ordinal),
            goodAlerts.Replace("\"status\":\"firing\"", "\"status\":\"burning\"", StringComparison.Ordinal),
            goodAlerts.Replace("\"alertname\":\"HostileProbe\",", "", StringComparison.Ordinal),
            goodAlerts.Replace("HostileProbe", new string('x', 201), StringComparison.Ordinal),
            goodAlerts.Replace("\"severity\":\"info\"", "\"severity\":null", StringComparison.Ordinal),
            goodAlerts.Replace("2026-01-01T00:00:00Z", "yesterday", StringComparison.Ordinal),
            goodAlerts.Replace("2026-01-01T00:00:00Z", "0001-01-01T00:00:00Z", StringComparison.Ordinal),
            goodAlerts.Replace("\"labels\":{", "\"labels\":[{", StringComparison.Ordinal).Replace("},\"annotations\"", "}],\"annotations\"", StringComparison.Ordinal)),
        // Alertmanager passes label values through as they are; whether they may hold control characters is not settled.
        Spliced("control character in an alertname", "HostileProbe", Controls).Select(h =>
            h with { Value = goodAlerts.Replace("\"HostileProbe\"", h.Value, StringComparison.Ordinal), Definite = false }));
}
