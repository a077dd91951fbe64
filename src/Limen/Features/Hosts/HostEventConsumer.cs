using System.Text.Json;
using Limen.Data;
using Limen.Features.Events;
using Microsoft.EntityFrameworkCore;

namespace Limen.Features.Hosts;

/// <summary>
/// Keeps this server's registry in step with the hosts other servers on the same database add,
/// remove or put in maintenance, without a restart. The server that made the change applied it
/// already; applying it again changes nothing.
/// </summary>
public sealed class HostEventConsumer(HostRegistry hosts, IDbContextFactory<LimenDbContext> dbFactory) : IEventConsumer
{
    public IReadOnlyCollection<string> Types { get; } = [EventTypes.HostAdded, EventTypes.HostRemoved, EventTypes.HostModeChanged];

    public async Task ConsumeAsync(LimenEvent committed, CancellationToken cancellationToken)
    {
        switch (committed.Type)
        {
            case EventTypes.HostAdded:
                var added = JsonSerializer.Deserialize<HostChange>(committed.Data, EventOutlet.DataJson)!;
                await using (var db = await dbFactory.CreateDbContextAsync(cancellationToken))
                {
                    // Null when it was removed again since: nothing to open.
                    if (await db.Hosts.AsNoTracking().FirstOrDefaultAsync(h => h.Id == added.HostId, cancellationToken) is { } row)
                    {
                        hosts.Add(row);
                    }
                }

                break;
            case EventTypes.HostRemoved:
                hosts.Remove(JsonSerializer.Deserialize<HostChange>(committed.Data, EventOutlet.DataJson)!.HostId);
                break;
            case EventTypes.HostModeChanged:
                var change = JsonSerializer.Deserialize<HostModeChange>(committed.Data, EventOutlet.DataJson)!;
                if (hosts.Find(change.HostId) is { } host)
                {
                    host.Mode = HostModeNames.Parse(change.Mode);
                }

                break;
        }
    }
}
