using Limen.Data;
using Limen.Features.Audit;
using Limen.Features.Events;
using Microsoft.EntityFrameworkCore;

namespace Limen.Features.Settings;

/// <summary>The run-time settings as they are now.</summary>
public sealed record SettingsView(bool RegistrationOpen, DateTimeOffset? UpdatedAt);

/// <summary>Any subset of the settings; an absent (or null) member keeps its value.</summary>
public sealed record SettingsUpdateRequest(bool? RegistrationOpen = null);

/// <summary>
/// The admins' run-time settings, in the one <see cref="SystemSettings"/> row. Read from the
/// database each time (one primary-key lookup): a change made through any replica holds on every
/// replica from its commit on.
/// </summary>
public sealed class SettingsService(LimenDbContext db, AuditTrail audit, EventOutlet events, TimeProvider clock)
{
    public async Task<SettingsView> GetAsync(CancellationToken cancellationToken) =>
        View(await db.SystemSettings.AsNoTracking().FirstOrDefaultAsync(s => s.Id == SystemSettings.SingletonId, cancellationToken));

    public async Task<bool> RegistrationOpenAsync(CancellationToken cancellationToken) => (await GetAsync(cancellationToken)).RegistrationOpen;

    /// <summary>Sets what <paramref name="request"/> names; sending the values in force (or none) writes, tells and audits nothing.</summary>
    public async Task<SettingsView> UpdateAsync(SettingsUpdateRequest request, CancellationToken cancellationToken)
    {
        // Locked, so two admins' changes are one after the other and each one's "before" is true.
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        var row = await db.SystemSettings
            .FromSqlInterpolated($"SELECT * FROM system_settings WHERE id = {SystemSettings.SingletonId} FOR UPDATE")
            .FirstOrDefaultAsync(cancellationToken);
        var before = View(row);
        if ((request.RegistrationOpen ?? before.RegistrationOpen) == before.RegistrationOpen)
        {
            return before;
        }

        if (row is null)
        {
            // The migration writes the row; this only puts back one that somebody deleted by hand.
            row = new SystemSettings { Id = SystemSettings.SingletonId };
            db.SystemSettings.Add(row);
        }

        row.RegistrationOpen = request.RegistrationOpen ?? row.RegistrationOpen;
        row.UpdatedAt = clock.GetUtcNow();
        var after = View(row);
        var change = new { before = new { before.RegistrationOpen }, after = new { after.RegistrationOpen } };
        events.Stage(db, new EventDraft(EventTypes.SettingsChanged, null, null, change));
        await db.SaveChangesAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        await audit.RecordAsync(new AuditEvent("settings.change", AuditResults.Success, "settings", null, Details: change), cancellationToken);
        return after;
    }

    /// <summary>A missing row reads as every setting at its default: registration closed.</summary>
    private static SettingsView View(SystemSettings? row) => new(row?.RegistrationOpen ?? false, row?.UpdatedAt);
}
