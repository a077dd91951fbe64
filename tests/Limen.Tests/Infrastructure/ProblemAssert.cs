using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Limen.Tests.Infrastructure;

public static class ProblemAssert
{
    /// <summary>Asserts an RFC 9457 problem with the status and type, and returns its body.</summary>
    public static async Task<JsonElement> IsProblem(HttpResponseMessage response, HttpStatusCode status, string type)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"expected {(int)status}, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var body = JsonDocument.Parse(text).RootElement;
        Assert.Equal(type, body.GetProperty("type").GetString());
        Assert.Equal((int)status, body.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrEmpty(body.GetProperty("title").GetString()));
        Assert.True(response.Headers.TryGetValues("X-Request-Id", out var ids), $"no X-Request-Id on a {(int)status}: {text}");
        Assert.Equal(body.GetProperty("request_id").GetString(), Assert.Single(ids));
        return body;
    }

    /// <summary>The value of one Prometheus sample (0 when absent) in a text exposition.</summary>
    public static double Sample(string exposition, string name, string labels = "")
    {
        var pattern = "^" + Regex.Escape(name) + (labels.Length > 0 ? Regex.Escape("{" + labels + "}") : "(?:\\{\\})?") + " (\\S+)$";
        var match = Regex.Match(exposition, pattern, RegexOptions.Multiline);
        return match.Success ? double.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : 0;
    }

    public static Task<JsonElement> Json(HttpResponseMessage response) => response.Content.ReadFromJsonAsync<JsonElement>();
}
