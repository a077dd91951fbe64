using System.Text.Json;
using Limen.Data;
using Limen.Features.Events;
using Limen.Features.Outcomes;
using Limen.Web;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace Limen.Features.Alerts;

public sealed record AlertQuery(
    [property: FromQuery(Name = "status")] string? Status,
    [property: FromQuery(Name = "alertname")] string? Alertname);

public sealed record AlertResponse(
    long Id, string Fingerprint, string Alertname, string Status, string Receiver, JsonElement Labels, JsonElement Annotations,
    DateTimeOffset StartsAt, DateTimeOffset? EndsAt, string? GeneratorUrl, DateTimeOffset FirstReceivedAt,
    DateTimeOffset LastReceivedAt, int Count);

/// <summary>
/// Alertmanager's receiver and the admins' list. Stored alerts are not written to the audit trail:
/// a delivery is not an act of a user, the alerts table is itself the record of what arrived and
/// when (first/last received, count), and repeats every repeat_interval would bury the user acts.
/// </summary>
public static class AlertEndpoints
{
    public static IEndpointRouteBuilder MapAlerts(this IEndpointRouteBuilder routes)
    {
        var alerts = routes.MapGroup("/api/alerts").WithTags("Alerts");
        // The group's authorization authenticates through the JWT scheme, which forwards this path to
        // the webhook scheme; naming the scheme here as well keeps a user's JWT out even if that changes.
        alerts.MapPost("/webhook", Receive)
            .RequireAuthorization(policy => policy.AddAuthenticationSchemes(AlertWebhookAuthenticationHandler.SchemeName).RequireAuthenticatedUser());
        alerts.MapGet("/", List).RequireAuthorization(Policies.Admin);
        return routes;
    }

    /// <summary>Parsed in full and validated before anything is stored; the body size limit is the server's (413 beyond).</summary>
    private static async Task<Results<NoContent, ProblemHttpResult>> Receive(
        HttpRequest request, LimenDbContext db, EventOutlet events, TimeProvider clock, CancellationToken cancellationToken)
    {
        if (!request.HasJsonContentType())
        {
            return Problems.Create(415, Problems.UnsupportedMediaType, "Unsupported media type", "Send application/json.");
        }

        AlertmanagerPayload? payload;
        try
        {
            using var document = await JsonDocument.ParseAsync(request.Body, cancellationToken: cancellationToken);
            payload = document.Deserialize<AlertmanagerPayload>(AlertmanagerPayload.Json);
            AlertmanagerPayload.RefuseDoubledMembers(document.RootElement);
        }
        catch (TextInputException e)
        {
            // Fields of this payload are named by their JSON path, like its other validation problems.
            return Problems.Invalid(e.Path ?? "$", $"{e.Path} {e.Problem}");
        }
        catch (JsonException e)
        {
            // The shared exception handler turns this into the usual 400 naming the JSON path.
            throw new BadHttpRequestException("The body is not an Alertmanager webhook payload (version 4).", StatusCodes.Status400BadRequest, e);
        }

        if (payload is null)
        {
            return Problems.Invalid("$", "The body must be a JSON object.");
        }

        if (payload.Validate() is { } invalid)
        {
            return Problems.Invalid(invalid.Field, invalid.Reason);
        }

        await AlertStore.StoreAsync(db, events, payload, clock.GetUtcNow(), cancellationToken);
        return TypedResults.NoContent();
    }

    private static async Task<Results<Ok<PagedList<AlertResponse>>, ProblemHttpResult>> List(
        [AsParameters] AlertQuery query, [AsParameters] PageRequest page, LimenDbContext db, CancellationToken cancellationToken) =>
        (await ListAsync(db, query, page, cancellationToken)).ToResult(TypedResults.Ok);

    /// <summary>The stored alerts, latest delivery first: the API's list and the admins' inbox page.</summary>
    public static async Task<Outcome<PagedList<AlertResponse>>> ListAsync(
        LimenDbContext db, AlertQuery query, PageRequest page, CancellationToken cancellationToken)
    {
        if (page.Validate() is { } problem)
        {
            return new Invalid(problem.Field, problem.Detail);
        }

        var rows = db.Alerts.AsNoTracking();
        if (query.Status is { } status)
        {
            if (!AlertmanagerPayload.IsStatus(status))
            {
                return new Invalid("status", "status must be 'firing' or 'resolved'.");
            }

            rows = rows.Where(a => a.Status == status);
        }

        if (query.Alertname is { } alertname)
        {
            rows = rows.Where(a => a.Alertname == alertname);
        }

        var total = await rows.CountAsync(cancellationToken);
        var items = await rows.OrderByDescending(a => a.LastReceivedAt).ThenByDescending(a => a.Id)
            .Skip(page.Skip).Take(page.Size).ToListAsync(cancellationToken);
        return new PagedList<AlertResponse>(items.ConvertAll(ToResponse), total, page.Number, page.Size);
    }

    private static AlertResponse ToResponse(Alert a) => new(
        a.Id, a.Fingerprint, a.Alertname, a.Status, a.Receiver, JsonDocument.Parse(a.Labels).RootElement,
        JsonDocument.Parse(a.Annotations).RootElement, a.StartsAt, a.EndsAt, a.GeneratorUrl, a.FirstReceivedAt, a.LastReceivedAt, a.Count);
}
