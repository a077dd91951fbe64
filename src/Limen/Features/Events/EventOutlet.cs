using System.Text.Json;
using Limen.Data;
using Limen.Hosting;
using Microsoft.EntityFrameworkCore;

namespace Limen.Features.Events;

/// <summary>
/// The one way events enter the stream. <see cref="Stage"/> adds the event to the caller's context,
/// so it commits (or rolls back) with the change it describes; <see cref="PublishAsync"/> is for
/// what has no row of its own to commit with (a host going down, an alert arriving). Committed
/// events reach every server through PostgreSQL (NOTIFY from the insert trigger).
/// </summary>
public sealed class EventOutlet(IDbContextFactory<LimenDbContext> dbFactory, ServerIdentity server, TimeProvider clock)
{
    public static readonly JsonSerializerOptions DataJson = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DictionaryKeyPolicy = JsonNamingPolicy.SnakeCaseLower,
    };

    public void Stage(LimenDbContext db, EventDraft draft) => db.Events.Add(Row(draft));

    public async Task PublishAsync(EventDraft draft, CancellationToken cancellationToken)
    {
        await using var db = await dbFactory.CreateDbContextAsync(cancellationToken);
        Stage(db, draft);
        await db.SaveChangesAsync(cancellationToken);
    }

    private LimenEvent Row(EventDraft draft) => new()
    {
        Type = draft.Type,
        At = clock.GetUtcNow(),
        OwnerId = draft.OwnerId,
        VmId = draft.VmId,
        ServerId = server.Id,
        Data = JsonSerializer.Serialize(draft.Data, DataJson),
    };
}
