using System.Text.Json;
using System.Text.RegularExpressions;

namespace Limen.Web;

/// <summary>
/// Rewrites the framework's binding and System.Text.Json messages into the API's own terms: the
/// JSON or query name of the field and the JSON kind it expects, never a .NET type
/// (`Nullable&lt;int&gt; Page`, `IReadOnlyList`1[System.String]`) a client cannot act on.
/// </summary>
public static partial class ApiLanguage
{
    /// <summary>The field (query parameter name, or "$" for the body) and a detail for a binding failure.</summary>
    public static (string? Field, string Detail) BindingDetail(BadHttpRequestException bad)
    {
        if (bad.StatusCode == StatusCodes.Status415UnsupportedMediaType)
        {
            return (null, "Send the request body as JSON, with Content-Type: application/json.");
        }

        var message = bad.Message;
        if (BoundParameter().Match(message) is { Success: true } parameter)
        {
            var type = parameter.Groups["type"].Value;
            var name = JsonNamingPolicy.SnakeCaseLower.ConvertName(parameter.Groups["name"].Value);
            if (message.Contains("body", StringComparison.OrdinalIgnoreCase))
            {
                return ("$", "A JSON request body is required.");
            }

            return message.StartsWith("Required", StringComparison.Ordinal)
                ? (name, $"{name} is required.")
                : (name, $"{name} must be {KindOf(type)}.");
        }

        return (null, WithoutTypeNames(message));
    }

    /// <summary>What was wrong with a JSON body, at which path.</summary>
    public static string JsonDetail(JsonException json)
    {
        var message = json.Message;
        var cut = message.IndexOf(" Path:", StringComparison.Ordinal);
        message = cut > 0 ? message[..cut] : message;
        message = ConvertedTo().Match(message) is { Success: true } converted ? $"expected {KindOf(converted.Groups["type"].Value)}."
            : UnmappedMember().Match(message) is { Success: true } unmapped ? $"'{unmapped.Groups["name"].Value}' is not a member of this request."
            : MissingMembers().Match(message) is { Success: true } missing ? $"required members are missing: {missing.Groups["names"].Value}."
            : message.Contains("uplicate", StringComparison.Ordinal) ? "a member appears more than once."
            : message.Contains("null", StringComparison.Ordinal) && message.Contains("doesn't allow", StringComparison.Ordinal) ? "must not be null."
            : WithoutTypeNames(message);
        return string.IsNullOrEmpty(json.Path) || json.Path == "$" ? Capitalize(message) : $"Invalid value at '{json.Path}': {message}";
    }

    /// <summary>A JSON path as validation problems name members: `$.name` → `name`, `$.alerts[0].x` → `alerts[0].x`.</summary>
    public static string MemberName(string? path) =>
        string.IsNullOrEmpty(path) || path == "$" ? "$" : path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : path;

    /// <summary>The JSON kind a .NET type name stands for, in the words of the API docs.</summary>
    public static string KindOf(string typeName)
    {
        var type = typeName.Replace("System.", "", StringComparison.Ordinal);
        if (NullableOf().Match(type) is { Success: true } nullable)
        {
            type = nullable.Groups["inner"].Value;
        }

        type = type.TrimEnd('?');
        return type switch
        {
            _ when type.Contains("List", StringComparison.Ordinal) || type.EndsWith("[]", StringComparison.Ordinal)
                || type.Contains("Enumerable", StringComparison.Ordinal) || type.Contains("Collection", StringComparison.Ordinal) => "an array",
            "int" or "long" or "short" or "byte" or "Int16" or "Int32" or "Int64" or "Byte" or "UInt16" or "UInt32" or "UInt64" => "an integer",
            "double" or "float" or "decimal" or "Double" or "Single" or "Decimal" => "a number",
            "bool" or "Boolean" => "true or false",
            "string" or "String" => "a string",
            "Guid" => "a UUID",
            "DateTimeOffset" or "DateTime" => "an ISO 8601 date-time",
            _ when type.StartsWith("Limen.", StringComparison.Ordinal) => "an object",
            _ => "a value of the documented type",
        };
    }

    private static string WithoutTypeNames(string message) => TypeName().Replace(message, "the value");

    private static string Capitalize(string message) => message.Length == 0 ? message : char.ToUpperInvariant(message[0]) + message[1..];

    [GeneratedRegex("parameter \"(?<type>.+) (?<name>\\w+)\"")]
    private static partial Regex BoundParameter();

    [GeneratedRegex("could not be converted to (?<type>\\S+?)\\.?$")]
    private static partial Regex ConvertedTo();

    [GeneratedRegex("The JSON property '(?<name>[^']*)' could not be mapped")]
    private static partial Regex UnmappedMember();

    [GeneratedRegex("missing required properties,? including:? (?<names>.+?)\\.?$")]
    private static partial Regex MissingMembers();

    [GeneratedRegex("^Nullable(`1\\[|<)(?<inner>[^\\]>]+)")]
    private static partial Regex NullableOf();

    [GeneratedRegex("'?\\b(?:System|Limen|Microsoft)\\.[\\w.`\\[\\],+<>]+'?")]
    private static partial Regex TypeName();
}
