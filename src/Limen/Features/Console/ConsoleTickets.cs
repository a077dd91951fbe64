using System.Buffers.Text;
using System.Security.Cryptography;
using Limen.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Limen.Features.RemoteConsole;

public sealed record IssuedTicket(string Ticket, DateTimeOffset ExpiresAt);

/// <summary>What consuming a ticket found: the user and VM it was issued for, or why it is refused.</summary>
public sealed record TicketCheck(string? RejectedBecause, Guid UserId = default, Guid VmId = default)
{
    public bool Accepted => RejectedBecause is null;
}

public static class TicketRejections
{
    public const string Missing = "missing";
    /// <summary>Not a ticket Limen issued: garbage, a truncated ticket, an access token.</summary>
    public const string Unknown = "unknown";
    public const string Reused = "reused";
    public const string Expired = "expired";
    public const string WrongVm = "wrong_vm";
    /// <summary>The connect carries a signed-in user other than the one the ticket was issued to.</summary>
    public const string WrongUser = "wrong_user";
    /// <summary>The ticket's user was disabled or lost access to the VM since it was issued.</summary>
    public const string NotAllowed = "not_allowed";
}

/// <summary>
/// One-time console tickets: 256 random bits, bound to a user and a VM, valid for a short time,
/// stored as SHA-256 in PostgreSQL and consumed by a single conditional UPDATE, so that of two
/// racing connects (on any replica) exactly one wins.
/// </summary>
public sealed class ConsoleTickets(IDbContextFactory<LimenDbContext> dbFactory, TimeProvider clock, IOptions<ConsoleOptions> options)
{
    private const int TicketBytes = 32;

    public async Task<IssuedTicket> IssueAsync(Guid userId, Guid vmId, CancellationToken cancellationToken)
    {
        var secret = RandomNumberGenerator.GetBytes(TicketBytes);
        var now = clock.GetUtcNow();
        var row = new ConsoleTicket
        {
            Id = Guid.NewGuid(),
            TokenHash = SHA256.HashData(secret),
            UserId = userId,
            VmId = vmId,
            CreatedAt = now,
            ExpiresAt = now + options.Value.TicketLifetime,
        };
        await using var db = await dbFactory.CreateDbContextAsync(cancellationToken);
        db.ConsoleTickets.Add(row);
        await db.SaveChangesAsync(cancellationToken);
        return new IssuedTicket(Base64Url.EncodeToString(secret), row.ExpiresAt);
    }

    /// <summary>Uses the ticket up (whatever the outcome, it can never be presented again) and checks it against the VM.</summary>
    public async Task<TicketCheck> ConsumeAsync(string? ticket, Guid vmId, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(ticket))
        {
            return new TicketCheck(TicketRejections.Missing);
        }

        if (ticket.Length != Base64Url.GetEncodedLength(TicketBytes) || Decode(ticket) is not { } secret)
        {
            return new TicketCheck(TicketRejections.Unknown);
        }

        var hash = SHA256.HashData(secret);
        var now = clock.GetUtcNow();
        await using var db = await dbFactory.CreateDbContextAsync(cancellationToken);
        var consumed = await db.ConsoleTickets
            .Where(t => t.TokenHash == hash && t.UsedAt == null)
            .ExecuteUpdateAsync(set => set.SetProperty(t => t.UsedAt, now), cancellationToken);
        var row = await db.ConsoleTickets.AsNoTracking().FirstOrDefaultAsync(t => t.TokenHash == hash, cancellationToken);
        var rejection = row is null ? TicketRejections.Unknown
            : consumed == 0 ? TicketRejections.Reused
            : row.ExpiresAt <= now ? TicketRejections.Expired
            : row.VmId != vmId ? TicketRejections.WrongVm
            : null;
        return new TicketCheck(rejection, row?.UserId ?? default, row?.VmId ?? default);
    }

    /// <summary>
    /// The ticket's secret, or null. TryDecodeFromChars throws (FormatException) instead of answering
    /// false when the last character carries non-zero padding bits — a random 43-character string
    /// does that three times in four, and the hostile-input test found it as a 500.
    /// </summary>
    private static byte[]? Decode(string ticket)
    {
        var secret = new byte[TicketBytes];
        try
        {
            return Base64Url.TryDecodeFromChars(ticket, secret, out var written) && written == TicketBytes ? secret : null;
        }
        catch (FormatException)
        {
            return null;
        }
    }

    /// <summary>Drops tickets long past their expiry; they only had to live long enough to be told apart from unknown ones.</summary>
    public async Task PurgeAsync(CancellationToken cancellationToken)
    {
        var cutoff = clock.GetUtcNow() - TimeSpan.FromHours(1);
        await using var db = await dbFactory.CreateDbContextAsync(cancellationToken);
        await db.ConsoleTickets.Where(t => t.ExpiresAt < cutoff).ExecuteDeleteAsync(cancellationToken);
    }
}
