using System.Diagnostics;
using System.Net.Http.Json;
using Limen.Data;
using Microsoft.EntityFrameworkCore;

namespace Limen.Features.Alerts;

public sealed record DeliveryCheckResult(bool Delivered, string TestId, TimeSpan Elapsed, string? Receiver);

/// <summary>
/// `limen alerts test`: posts a synthetic alert to Alertmanager and waits until Limen's webhook has
/// stored it — the whole path Prometheus alerts take after Prometheus itself.
/// </summary>
public static class AlertDeliveryCheck
{
    public const string Alertname = "LimenAlertDeliveryTest";
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(200);

    /// <exception cref="HttpRequestException">Alertmanager cannot be reached or refuses the alert.</exception>
    public static async Task<DeliveryCheckResult> RunAsync(Uri alertmanager, IDbContextFactory<LimenDbContext> dbFactory,
        TimeSpan timeout, CancellationToken cancellationToken)
    {
        var testId = Guid.NewGuid().ToString("N");
        using var http = new HttpClient { BaseAddress = alertmanager, Timeout = TimeSpan.FromSeconds(10) };
        var started = Stopwatch.GetTimestamp();
        await PostAsync(http, testId, endsAt: null, cancellationToken);

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            while (true)
            {
                await using (var db = await dbFactory.CreateDbContextAsync(deadline.Token))
                {
                    var stored = await db.Alerts.FromSql($"SELECT * FROM alerts WHERE labels ->> 'test_id' = {testId}")
                        .AsNoTracking().FirstOrDefaultAsync(deadline.Token);
                    if (stored is not null)
                    {
                        var elapsed = Stopwatch.GetElapsedTime(started);
                        // Resolve it, so it does not stay "firing" in Alertmanager and Limen until it times out.
                        await PostAsync(http, testId, DateTimeOffset.UtcNow, cancellationToken);
                        return new DeliveryCheckResult(true, testId, elapsed, stored.Receiver);
                    }
                }

                await Task.Delay(PollInterval, deadline.Token);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new DeliveryCheckResult(false, testId, Stopwatch.GetElapsedTime(started), null);
        }
    }

    private static async Task PostAsync(HttpClient http, string testId, DateTimeOffset? endsAt, CancellationToken cancellationToken)
    {
        var alert = new Dictionary<string, object>
        {
            // A group of its own (group_by: [alertname, instance]), so delivery waits group_wait and
            // not the group_interval of an earlier test's group that Alertmanager still holds.
            ["labels"] = new Dictionary<string, string>
            {
                ["alertname"] = Alertname,
                ["severity"] = "info",
                ["instance"] = "limen-alerts-test-" + testId,
                ["test_id"] = testId,
            },
            ["annotations"] = new Dictionary<string, string>
            {
                ["summary"] = "Synthetic alert sent by `limen alerts test`",
                ["description"] = "Proves that Alertmanager delivers to Limen's webhook. Nothing to do.",
            },
        };
        if (endsAt is { } end)
        {
            alert["endsAt"] = end;
        }

        using var response = await http.PostAsJsonAsync("api/v2/alerts", new[] { alert }, cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            throw new HttpRequestException(
                $"Alertmanager answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(cancellationToken)}");
        }
    }
}
