using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Limen.Features.Events;
using Limen.Hosting;
using Spectre.Console;

namespace Limen.Cli;

/// <summary>
/// `limen events`: follows GET /api/events of a running server, one line per event. Signs in with
/// --username (password from LIMEN_PASSWORD, else asked for) and signs in again on every reconnect,
/// or uses a fixed --token / LIMEN_TOKEN (which ends the command when it expires). A dropped
/// stream is resumed with Last-Event-ID after 1, 2, 4 … at most 30 s, so no event is missed.
/// </summary>
public static class EventsCommand
{
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(30);

    public static Command Create()
    {
        var url = new Option<string>("--url") { Description = "Base URL of the Limen API.", DefaultValueFactory = _ => LimenOptions.DefaultUrls };
        var username = new Option<string?>("--username") { Description = "Sign in as this user (password from LIMEN_PASSWORD, else prompted)." };
        var token = new Option<string?>("--token") { Description = "An access token instead of signing in (default LIMEN_TOKEN)." };
        var from = new Option<long?>("--last-event-id") { Description = "Replay the kept events after this id first (0: all kept)." };
        var command = new Command("events", "Follow the event stream of a running server, one line per event.") { url, username, token, from };
        command.SetAction(async (parse, cancellationToken) =>
        {
            if (!Uri.TryCreate(parse.GetValue(url), UriKind.Absolute, out var baseUrl) || baseUrl.Scheme is not ("http" or "https"))
            {
                Console.Error.WriteLine("--url must be an http(s) URL such as http://127.0.0.1:18443.");
                return LimenCli.ExitUsage;
            }

            var fixedToken = parse.GetValue(token) ?? Environment.GetEnvironmentVariable("LIMEN_TOKEN");
            var user = parse.GetValue(username);
            if ((fixedToken is null) == (user is null))
            {
                Console.Error.WriteLine("Give either --username (password from LIMEN_PASSWORD or the prompt) or --token / LIMEN_TOKEN.");
                return LimenCli.ExitUsage;
            }

            string? password = null;
            if (user is not null)
            {
                password = Environment.GetEnvironmentVariable("LIMEN_PASSWORD")
                    ?? (Console.IsInputRedirected ? Console.In.ReadLine() : AnsiConsole.Prompt(new TextPrompt<string>($"Password for {user}:").Secret()));
            }

            using var http = new HttpClient { BaseAddress = baseUrl, Timeout = Timeout.InfiniteTimeSpan };
            return await FollowAsync(http, fixedToken, user, password, parse.GetValue(from), cancellationToken);
        });
        return command;
    }

    private static async Task<int> FollowAsync(HttpClient http, string? fixedToken, string? user, string? password, long? lastId, CancellationToken cancellationToken)
    {
        var failures = 0;
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                var token = fixedToken ?? await LoginAsync(http, user!, password!, cancellationToken);
                using var request = new HttpRequestMessage(HttpMethod.Get, "/api/events");
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
                if (lastId is { } id)
                {
                    request.Headers.TryAddWithoutValidation(EventEndpoints.LastEventIdHeader, id.ToString(CultureInfo.InvariantCulture));
                }

                using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
                if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
                {
                    Console.Error.WriteLine($"The server refused the credentials ({(int)response.StatusCode}).");
                    return LimenCli.ExitFailed;
                }

                response.EnsureSuccessStatusCode();
                failures = 0;
                await using var body = await response.Content.ReadAsStreamAsync(cancellationToken);
                using var lines = new StreamReader(body);
                string? type = null, data = null;
                while (await lines.ReadLineAsync(cancellationToken) is { } line)
                {
                    if (line.StartsWith("id: ", StringComparison.Ordinal))
                    {
                        lastId = long.Parse(line.AsSpan(4), CultureInfo.InvariantCulture);
                    }
                    else if (line.StartsWith("event: ", StringComparison.Ordinal))
                    {
                        type = line[7..];
                    }
                    else if (line.StartsWith("data: ", StringComparison.Ordinal))
                    {
                        data = line[6..];
                    }
                    else if (line.Length == 0 && type is not null)
                    {
                        Console.WriteLine(Describe(type, data));
                        type = data = null;
                    }
                }

                Console.Error.WriteLine("The server ended the stream; reconnecting.");
            }
            catch (Exception e) when (e is HttpRequestException or IOException && !cancellationToken.IsCancellationRequested)
            {
                failures++;
                var delay = TimeSpan.FromTicks(Math.Min(MaxBackoff.Ticks, TimeSpan.FromSeconds(1).Ticks << Math.Min(failures - 1, 5)));
                Console.Error.WriteLine($"Stream lost ({e.Message}); resuming after event {lastId?.ToString(CultureInfo.InvariantCulture) ?? "-"} in {delay.TotalSeconds:0} s.");
                await Task.Delay(delay, cancellationToken);
            }
            catch (InvalidOperationException e)
            {
                Console.Error.WriteLine(e.Message);
                return LimenCli.ExitFailed;
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                break;
            }
        }

        return 0;
    }

    /// <summary>"2026-12-01T12:00:00.123Z #42 vm.state_changed vm=… {data}" for an event; the control messages say what they mean.</summary>
    private static string Describe(string type, string? data)
    {
        if (type is EventFrame.Reset or EventFrame.Overflow)
        {
            return $"-- {type}: {data} (events were missed; what is shown from here on is complete)";
        }

        using var json = JsonDocument.Parse(data ?? "{}");
        var root = json.RootElement;
        var at = root.TryGetProperty("at", out var a) ? a.GetDateTimeOffset().UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture) : "";
        var id = root.TryGetProperty("id", out var i) ? i.GetInt64() : 0;
        var vm = root.TryGetProperty("vm_id", out var v) && v.ValueKind == JsonValueKind.String ? $" vm={v.GetString()}" : "";
        var fields = root.TryGetProperty("data", out var d) ? d.GetRawText() : "{}";
        return $"{at} #{id} {type}{vm} {fields}";
    }

    private static async Task<string> LoginAsync(HttpClient http, string username, string password, CancellationToken cancellationToken)
    {
        using var response = await http.PostAsJsonAsync("/api/auth/login", new { username, password }, cancellationToken);
        if (response.StatusCode == HttpStatusCode.Unauthorized)
        {
            throw new InvalidOperationException($"Signing in as {username} failed: wrong username or password.");
        }

        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<JsonElement>(cancellationToken)).GetProperty("access_token").GetString()!;
    }
}
