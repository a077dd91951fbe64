using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Limen.Data;

namespace Limen.Features.Events;

/// <summary>
/// One message of the SSE stream, encoded once and written as the same bytes to every client that
/// may see it. <see cref="Id"/> is the event's sequence id; control messages (heartbeat) carry 0.
/// </summary>
public sealed class EventFrame
{
    /// <summary>The SSE field <c>event:</c> of the control messages (docs/api.md, "Events").</summary>
    public const string Reset = "reset";
    public const string Overflow = "overflow";

    private EventFrame(long id, Guid? ownerId, byte[] bytes)
    {
        Id = id;
        OwnerId = ownerId;
        Bytes = bytes;
    }

    public long Id { get; }

    /// <summary>Who may see it besides admins (<see cref="EventDraft"/>).</summary>
    public Guid? OwnerId { get; }

    public byte[] Bytes { get; }

    /// <summary>A comment line: ignored by every SSE client, it only proves the connection alive.</summary>
    public static readonly EventFrame Heartbeat = new(0, null, Encoding.UTF8.GetBytes(": heartbeat\n\n"));

    /// <summary>Seen by the caller's user (or every admin): the owner's, or admins' alone when it has no owner.</summary>
    public bool VisibleTo(Guid userId, bool admin) => admin || OwnerId == userId;

    /// <summary>
    /// <c>id:</c> sequence id, <c>event:</c> type, <c>data:</c> one line of JSON
    /// <c>{id, type, at, vm_id, owner_id, server_id, data}</c>; <c>data</c> is the event's own fields.
    /// </summary>
    public static EventFrame Of(LimenEvent row)
    {
        var buffer = new ArrayBufferWriter<byte>(256 + row.Data.Length);
        Append(buffer, $"id: {row.Id.ToString(CultureInfo.InvariantCulture)}\nevent: {row.Type}\ndata: ");
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteNumber("id", row.Id);
            json.WriteString("type", row.Type);
            json.WriteString("at", row.At.ToUniversalTime());
            WriteGuid(json, "vm_id", row.VmId);
            WriteGuid(json, "owner_id", row.OwnerId);
            json.WriteString("server_id", row.ServerId);
            json.WritePropertyName("data");
            // jsonb's text is one line of valid JSON: embedded as it is, never re-parsed per client.
            json.WriteRawValue(row.Data, skipInputValidation: true);
            json.WriteEndObject();
        }

        Append(buffer, "\n\n");
        return new EventFrame(row.Id, row.OwnerId, buffer.WrittenSpan.ToArray());
    }

    /// <summary>A control message: <c>event:</c> name and one line of JSON; with an <c>id:</c> when <paramref name="id"/> is set.</summary>
    public static byte[] Control(string name, long? id, object data)
    {
        var idLine = id is { } value ? $"id: {value.ToString(CultureInfo.InvariantCulture)}\n" : "";
        return Encoding.UTF8.GetBytes($"{idLine}event: {name}\ndata: {JsonSerializer.Serialize(data, EventOutlet.DataJson)}\n\n");
    }

    private static void WriteGuid(Utf8JsonWriter json, string name, Guid? value)
    {
        if (value is { } id)
        {
            json.WriteString(name, id);
        }
        else
        {
            json.WriteNull(name);
        }
    }

    private static void Append(ArrayBufferWriter<byte> buffer, string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        buffer.Write(bytes);
    }
}
