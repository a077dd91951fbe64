using System.Text.Json;
using System.Text.Json.Serialization;
using Limen.Web;

namespace Limen.Features.Alerts;

/// <summary>Alertmanager's webhook body, version 4 (https://prometheus.io/docs/alerting/latest/configuration/#webhook_config).</summary>
public sealed record AlertmanagerPayload(
    [property: JsonPropertyName("version")] string Version,
    [property: JsonPropertyName("groupKey")] string GroupKey,
    [property: JsonPropertyName("status")] string Status,
    [property: JsonPropertyName("receiver")] string Receiver,
    [property: JsonPropertyName("alerts")] IReadOnlyList<AlertmanagerAlert> Alerts,
    [property: JsonPropertyName("truncatedAlerts")] int? TruncatedAlerts = null,
    [property: JsonPropertyName("groupLabels")] IReadOnlyDictionary<string, string>? GroupLabels = null,
    [property: JsonPropertyName("commonLabels")] IReadOnlyDictionary<string, string>? CommonLabels = null,
    [property: JsonPropertyName("commonAnnotations")] IReadOnlyDictionary<string, string>? CommonAnnotations = null,
    [property: JsonPropertyName("externalURL")] string? ExternalUrl = null)
{
    public const string SupportedVersion = "4";
    public const string Firing = "firing";
    public const string Resolved = "resolved";

    /// <summary>
    /// Types, required members and nulls are enforced; members this version does not define are
    /// skipped, because Alertmanager adds fields within version 4 (truncatedAlerts came that way) and
    /// a refused delivery is an alert lost. Duplicate members and text outside the input policy are
    /// refused, as everywhere in the API.
    /// </summary>
    public static readonly JsonSerializerOptions Json = new()
    {
        RespectNullableAnnotations = true,
        RespectRequiredConstructorParameters = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip,
        AllowDuplicateProperties = false,
        Converters = { new TextInputJsonConverter() },
    };

    /// <summary>
    /// The serializer's duplicate check sees only the members it maps; a doubled member it skips is
    /// as malformed as a doubled one it reads. Thrown as the serializer would, naming the JSON path
    /// (JsonDocument's own duplicate check names none).
    /// </summary>
    public static void RefuseDoubledMembers(JsonElement element, string path = "$")
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                var seen = new HashSet<string>(StringComparer.Ordinal);
                foreach (var member in element.EnumerateObject())
                {
                    var memberPath = $"{path}.{member.Name}";
                    if (!seen.Add(member.Name))
                    {
                        throw new JsonException($"The member '{member.Name}' appears twice.", memberPath, null, null);
                    }

                    RefuseDoubledMembers(member.Value, memberPath);
                }

                break;
            case JsonValueKind.Array:
                var index = 0;
                foreach (var item in element.EnumerateArray())
                {
                    RefuseDoubledMembers(item, $"{path}[{index++}]");
                }

                break;
        }
    }

    /// <summary>The first rule the payload breaks, as (JSON path, reason); null when it is acceptable.</summary>
    public (string Field, string Reason)? Validate()
    {
        if (Version != SupportedVersion)
        {
            return ("$.version", $"Only webhook payload version {SupportedVersion} is supported, not '{Version}'.");
        }

        if (!IsStatus(Status))
        {
            return ("$.status", "status must be 'firing' or 'resolved'.");
        }

        if (Receiver.Length is 0 or > 200)
        {
            return ("$.receiver", "receiver must be 1 to 200 characters.");
        }

        if (Alerts.Count == 0)
        {
            return ("$.alerts", "alerts must not be empty.");
        }

        for (var i = 0; i < Alerts.Count; i++)
        {
            // System.Text.Json enforces nullability on members, not on collection elements.
            if (Alerts[i] is null)
            {
                return ($"$.alerts[{i}]", "alerts must hold objects, not null.");
            }

            if (Alerts[i].Validate() is { } problem)
            {
                return ($"$.alerts[{i}].{problem.Field}", problem.Reason);
            }
        }

        return null;
    }

    internal static bool IsStatus(string status) => status is Firing or Resolved;
}

public sealed record AlertmanagerAlert(
    [property: JsonPropertyName("status")] string Status,
    [property: JsonPropertyName("labels")] IReadOnlyDictionary<string, string> Labels,
    [property: JsonPropertyName("annotations")] IReadOnlyDictionary<string, string> Annotations,
    [property: JsonPropertyName("startsAt")] DateTimeOffset StartsAt,
    [property: JsonPropertyName("endsAt")] DateTimeOffset EndsAt,
    [property: JsonPropertyName("fingerprint")] string Fingerprint,
    [property: JsonPropertyName("generatorURL")] string? GeneratorUrl = null)
{
    public string Alertname => Labels["alertname"];

    internal (string Field, string Reason)? Validate()
    {
        if (!AlertmanagerPayload.IsStatus(Status))
        {
            return ("status", "status must be 'firing' or 'resolved'.");
        }

        if (Fingerprint.Length is 0 or > 64 || !Fingerprint.All(char.IsAsciiHexDigit))
        {
            return ("fingerprint", "fingerprint must be 1 to 64 hexadecimal digits.");
        }

        if (Labels.Values.Any(v => v is null) || Annotations.Values.Any(v => v is null))
        {
            return (Labels.Values.Any(v => v is null) ? "labels" : "annotations", "label and annotation values must be strings, not null.");
        }

        // Names are JSON member names, which the string converter never sees.
        if (Labels.Keys.Concat(Annotations.Keys).FirstOrDefault(k => TextInput.NameProblem(k) is not null) is { } badName)
        {
            return (Labels.ContainsKey(badName) ? "labels" : "annotations", "label and annotation names " + TextInput.NameProblem(badName));
        }

        if (!Labels.TryGetValue("alertname", out var name) || name.Length is 0 or > 200)
        {
            return ("labels.alertname", "every alert needs an alertname label of 1 to 200 characters.");
        }

        return StartsAt == default ? ("startsAt", "startsAt must be set.") : null;
    }
}
