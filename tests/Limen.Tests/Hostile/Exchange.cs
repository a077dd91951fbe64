using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Limen.Tests.Hostile;

/// <summary>What a hostile test sends: method, path and query (already escaped), and an optional body.</summary>
public sealed record HostileRequest(string Method, string PathAndQuery, byte[]? Body = null, string? ContentType = null,
    IReadOnlyDictionary<string, string>? Headers = null)
{
    public static HostileRequest Json(string method, string pathAndQuery, string json) =>
        new(method, pathAndQuery, Encoding.UTF8.GetBytes(json), "application/json");

    public HttpRequestMessage ToMessage()
    {
        var message = new HttpRequestMessage(new HttpMethod(Method), PathAndQuery);
        if (Body is not null)
        {
            message.Content = new ByteArrayContent(Body);
            // ByteArrayContent has no Content-Type of its own: "none" really sends none.
            if (ContentType is not null)
            {
                message.Content.Headers.TryAddWithoutValidation("Content-Type", ContentType);
            }
        }

        foreach (var (name, value) in Headers ?? new Dictionary<string, string>())
        {
            message.Headers.TryAddWithoutValidation(name, value);
        }

        return message;
    }

    public override string ToString()
    {
        var text = new StringBuilder($"{Method} {PathAndQuery}");
        foreach (var (name, value) in Headers ?? new Dictionary<string, string>())
        {
            text.Append($" [{name}: {Exchange.Printable(value, 120)}]");
        }

        if (Body is not null)
        {
            text.Append($" [Content-Type: {ContentType ?? "none"}] body {Exchange.Printable(Encoding.UTF8.GetString(Body), 400)}");
        }

        return text.ToString();
    }
}

/// <summary>One request and its response, reduced to what the contract checks read.</summary>
/// <param name="Landed">Where redirects ended (path and query), when the answer came from another URL than the request's.</param>
public sealed partial record Exchange(string Principal, HostileRequest Request, int Status, string? MediaType, string? RequestIdHeader, string Body, string? Landed = null)
{
    private static readonly JsonSerializerOptions PrintJson = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static async Task<Exchange> SendAsync(Principal principal, HostileRequest request)
    {
        using var message = request.ToMessage();
        // The client follows redirects and rewrites the message's URI as it goes.
        var asked = message.RequestUri?.ToString();
        using var response = await principal.Client.SendAsync(message, HttpCompletionOption.ResponseHeadersRead);
        var body = response.Content.Headers.ContentType?.MediaType == "text/event-stream"
            ? await ReadStreamAsync(response)
            : await response.Content.ReadAsStringAsync();
        var requestId = response.Headers.TryGetValues("X-Request-Id", out var values) ? string.Join(",", values) : null;
        var landed = response.RequestMessage?.RequestUri;
        return new Exchange(principal.Name, request, (int)response.StatusCode, response.Content.Headers.ContentType?.MediaType, requestId, body,
            landed is null || landed.ToString() == asked || landed.PathAndQuery == asked ? null : landed.PathAndQuery);
    }

    /// <summary>
    /// An event stream never ends by itself: what arrives until it has been quiet for
    /// <see cref="StreamQuiet"/> (a replay comes at once) is its body, then the connection is dropped.
    /// </summary>
    private static async Task<string> ReadStreamAsync(HttpResponseMessage response)
    {
        await using var stream = await response.Content.ReadAsStreamAsync();
        var text = new MemoryStream();
        var buffer = new byte[16 * 1024];
        while (text.Length < 4 * 1024 * 1024)
        {
            using var quiet = new CancellationTokenSource(StreamQuiet);
            try
            {
                var read = await stream.ReadAsync(buffer, quiet.Token);
                if (read == 0)
                {
                    break;
                }

                text.Write(buffer, 0, read);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        return Encoding.UTF8.GetString(text.ToArray());
    }

    public static readonly TimeSpan StreamQuiet = TimeSpan.FromMilliseconds(150);

    /// <summary>
    /// Kestrel's own 400, written before the application sees the request (an escaped NUL in the
    /// path): no request id, no body. Whether the API can answer these with a problem is pinned by
    /// InputPolicyExamplesTests; the generated properties count them as refusals.
    /// </summary>
    public bool RejectedByKestrel => Status == 400 && RequestIdHeader is null && MediaType is null && Body.Length == 0;

    /// <summary>The problem's <c>type</c>, or null when the body is no problem.</summary>
    public string? ProblemType => TryParse() is { ValueKind: JsonValueKind.Object } o && o.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String
        ? t.GetString()
        : null;

    /// <summary>The problem's <c>field</c> extension, when it has one.</summary>
    public string? ProblemField => TryParse() is { ValueKind: JsonValueKind.Object } o && o.TryGetProperty("field", out var f) && f.ValueKind == JsonValueKind.String
        ? f.GetString()
        : null;

    /// <summary>
    /// What every response of the API owes its client, whatever the input: a request id, no 5xx,
    /// and for every 4xx an RFC 9457 problem in the API's own words (no .NET type names, JSON field names).
    /// </summary>
    public IEnumerable<string> ContractViolations()
    {
        if (string.IsNullOrEmpty(RequestIdHeader))
        {
            yield return "no X-Request-Id header";
        }

        if (Status >= 500)
        {
            yield return $"server error {Status}";
        }

        if (Status < 400)
        {
            yield break;
        }

        if (MediaType != "application/problem+json")
        {
            yield return $"{Status} is not application/problem+json (Content-Type {MediaType ?? "none"})";
            yield break;
        }

        if (TryParse() is not { ValueKind: JsonValueKind.Object } problem)
        {
            yield return $"{Status} problem body is not a JSON object";
            yield break;
        }

        if (!problem.TryGetProperty("type", out var type) || type.GetString()?.StartsWith("urn:limen:problem:", StringComparison.Ordinal) != true)
        {
            yield return "problem type is not one of the API's (urn:limen:problem:…)";
        }

        if (!problem.TryGetProperty("status", out var status) || status.ValueKind != JsonValueKind.Number || status.GetInt32() != Status)
        {
            yield return "problem status differs from the HTTP status";
        }

        if (problem.TryGetProperty("request_id", out var id) && RequestIdHeader is not null && id.GetString() != RequestIdHeader)
        {
            yield return $"problem request_id {id.GetString()} differs from X-Request-Id {RequestIdHeader}";
        }

        foreach (var text in Strings(problem))
        {
            if (DotNetName().Match(text) is { Success: true } match)
            {
                yield return $"problem names a .NET type or namespace ('{match.Value}')";
                break;
            }
        }

        // A path may repeat a member name the client itself sent, however it was spelled.
        var sent = Request.Body is null ? "" : Encoding.UTF8.GetString(Request.Body);
        if (ProblemField is { } field && PascalSegment().Matches(field).Any(m => !sent.Contains($"\"{m.Groups[2].Value}\"", StringComparison.Ordinal)))
        {
            yield return $"problem field '{field}' is a .NET member name, not a JSON one";
        }
    }

    public override string ToString() =>
        $"{Principal}: {Request} -> {Status} {MediaType ?? "no content type"}{(RequestIdHeader is null ? " (no X-Request-Id)" : "")} {Printable(Body, 600)}";

    /// <summary>A string as a JSON literal, so NULs, newlines and bidi overrides show as escapes, cut at <paramref name="max"/>.</summary>
    public static string Printable(string text, int max)
    {
        var cut = text.Length > max ? text[..max] : text;
        var json = JsonSerializer.Serialize(cut, PrintJson);
        json = Regex.Replace(json, @"[\u0080-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]", m => $"\\u{(int)m.Value[0]:x4}");
        return text.Length > max ? json + $"…({text.Length} chars)" : json;
    }

    private JsonElement? TryParse()
    {
        try
        {
            return JsonDocument.Parse(Body).RootElement;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static IEnumerable<string> Strings(JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.String:
                yield return element.GetString()!;
                break;
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                {
                    foreach (var s in Strings(property.Value))
                    {
                        yield return s;
                    }
                }

                break;
            case JsonValueKind.Array:
                foreach (var item in element.EnumerateArray())
                {
                    foreach (var s in Strings(item))
                    {
                        yield return s;
                    }
                }

                break;
        }
    }

    [GeneratedRegex(@"\b(System|Microsoft|Limen|Npgsql)\.[A-Z]|Nullable|`\d|\b(List|Dictionary)<|\b(Int16|Int32|Int64|UInt32|UInt64|Boolean|String|Guid|DateTimeOffset|DateTime|IReadOnlyList|IReadOnlyDictionary|IEnumerable|ICollection|IList)\b")]
    private static partial Regex DotNetName();

    [GeneratedRegex(@"(^|[.$\]])([A-Z][a-z][A-Za-z0-9_]*)")]
    private static partial Regex PascalSegment();
}
