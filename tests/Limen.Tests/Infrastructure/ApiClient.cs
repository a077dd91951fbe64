using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;

namespace Limen.Tests.Infrastructure;

/// <summary>HTTP clients for a Limen under test, in-process or a real process: one way to build them and to sign in.</summary>
public static class ApiClient
{
    public static HttpClient Create(Uri baseAddress, string? accessToken = null)
    {
        // No cookie container: the refresh cookie is a test's own business, sent by hand where wanted.
        var client = new HttpClient(new HttpClientHandler { UseCookies = false }) { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(100) };
        if (accessToken is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", accessToken);
        }

        return client;
    }

    public static async Task<string> LoginAsync(Uri baseAddress, string username, string password)
    {
        using var client = Create(baseAddress);
        var response = await client.PostAsJsonAsync("/api/auth/login", new { username, password });
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"login as {username}: {(int)response.StatusCode} {body}");
        return JsonDocument.Parse(body).RootElement.GetProperty("access_token").GetString()!;
    }
}
