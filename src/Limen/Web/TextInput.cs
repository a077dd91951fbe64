using System.Text.Json;
using System.Text.Json.Serialization;

namespace Limen.Web;

/// <summary>
/// The one rule for text that comes in (JSON strings, query values): no NUL, no control characters
/// except tab, line feed and carriage return (descriptions keep their lines), no lone UTF-16
/// surrogates. PostgreSQL refuses NUL in text and jsonb and cannot store a lone surrogate, libvirt
/// refuses control characters in titles, and a terminal or log reader should never be fed escape
/// sequences; refusing them at the door keeps every later layer from failing on them with a 500.
/// Names are stricter still (each feature's rules: no whitespace at either end, no line breaks).
/// </summary>
public static class TextInput
{
    /// <summary>Why <paramref name="value"/> is not acceptable text, or null when it is.</summary>
    public static string? Problem(string value)
    {
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if (char.IsHighSurrogate(c) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1]))
            {
                i++;
                continue;
            }

            if (char.IsSurrogate(c))
            {
                return "must be valid Unicode text (it contains a lone surrogate).";
            }

            if (char.IsControl(c) && c is not ('\t' or '\n' or '\r'))
            {
                return $"must not contain control characters (found U+{(int)c:X4}).";
            }
        }

        return null;
    }

    /// <summary>For names: also no line breaks or tabs, and no whitespace at either end.</summary>
    public static string? NameProblem(string value) =>
        Problem(value)
        ?? (value.AsSpan().IndexOfAny('\t', '\n', '\r') >= 0 ? "must be a single line."
        : value.Length > 0 && (char.IsWhiteSpace(value[0]) || char.IsWhiteSpace(value[^1])) ? "must not start or end with whitespace."
        : null);
}

/// <summary>A JSON string that is well-formed but breaks <see cref="TextInput"/>: a validation problem, not a malformed body.</summary>
public sealed class TextInputException(string problem) : JsonException("The text " + problem)
{
    /// <summary>What is wrong, to follow the member's name ("must not contain control characters …").</summary>
    public string Problem { get; } = problem;
}

/// <summary>
/// Every JSON string the API reads passes <see cref="TextInput.Problem"/>; a failure is a
/// <see cref="TextInputException"/>, which System.Text.Json gives its path and the exception handler
/// answers with a validation problem naming the member.
/// </summary>
public sealed class TextInputJsonConverter : JsonConverter<string>
{
    public override string? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.String)
        {
            throw new JsonException("expected a string.");
        }

        var value = reader.GetString()!;
        return TextInput.Problem(value) is { } problem ? throw new TextInputException(problem) : value;
    }

    public override void Write(Utf8JsonWriter writer, string value, JsonSerializerOptions options) => writer.WriteStringValue(value);
}

/// <summary>
/// Query values follow the same rule before any endpoint binds them: a NUL in an audit filter would
/// otherwise reach PostgreSQL and come back as a 500.
/// </summary>
public sealed class QueryTextMiddleware(RequestDelegate next)
{
    public Task InvokeAsync(HttpContext context)
    {
        foreach (var (name, values) in context.Request.Query)
        {
            if (TextInput.Problem(name) is not null)
            {
                return Problems.Invalid("query", "Query parameter names must be plain text.").ExecuteAsync(context);
            }

            foreach (var value in values)
            {
                if (value is not null && TextInput.Problem(value) is { } problem)
                {
                    return Problems.Invalid(name, $"{name} {problem}").ExecuteAsync(context);
                }
            }
        }

        return next(context);
    }
}
