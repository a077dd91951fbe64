using System.Security.Cryptography;
using Limen.Data;
using Limen.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Limen.Features.Auth;

public enum RefreshOutcome
{
    Rotated,
    Invalid,
    Reused,
}

/// <summary>
/// Opaque refresh tokens: 256 random bits handed out once, stored as SHA-256 only, rotated on every
/// use. Presenting a token that was already rotated means it leaked: the whole family is revoked.
/// </summary>
public sealed class RefreshTokens(LimenDbContext db, IOptions<AuthOptions> options, TimeProvider clock)
{
    public TimeSpan Lifetime => TimeSpan.FromDays(options.Value.RefreshTokenDays);

    public async Task<string> IssueAsync(Guid userId, Guid? familyId, CancellationToken cancellationToken)
    {
        var secret = Base64Url(RandomNumberGenerator.GetBytes(32));
        var now = clock.GetUtcNow();
        db.RefreshTokens.Add(new RefreshToken
        {
            Id = Guid.NewGuid(),
            UserId = userId,
            FamilyId = familyId ?? Guid.NewGuid(),
            TokenHash = Hash(secret),
            CreatedAt = now,
            ExpiresAt = now + Lifetime,
        });
        await db.SaveChangesAsync(cancellationToken);
        return secret;
    }

    /// <summary>Consumes <paramref name="secret"/>; on success returns its user and a fresh token of the same family.</summary>
    public async Task<(RefreshOutcome Outcome, Guid UserId, string? NewSecret)> RotateAsync(string secret, CancellationToken cancellationToken)
    {
        var hash = Hash(secret);
        var token = await db.RefreshTokens.AsNoTracking().FirstOrDefaultAsync(t => t.TokenHash == hash, cancellationToken);
        if (token is null)
        {
            return (RefreshOutcome.Invalid, Guid.Empty, null);
        }

        var now = clock.GetUtcNow();
        if (token.UsedAt is not null || token.RevokedAt is not null)
        {
            if (token.UsedAt is not null)
            {
                await RevokeFamilyAsync(token.FamilyId, cancellationToken);
                return (RefreshOutcome.Reused, token.UserId, null);
            }

            return (RefreshOutcome.Invalid, token.UserId, null);
        }

        if (token.ExpiresAt <= now)
        {
            return (RefreshOutcome.Invalid, token.UserId, null);
        }

        // Only one of two concurrent uses can flip used_at; the loser is treated as a reuse.
        var claimed = await db.RefreshTokens
            .Where(t => t.Id == token.Id && t.UsedAt == null && t.RevokedAt == null)
            .ExecuteUpdateAsync(set => set.SetProperty(t => t.UsedAt, now), cancellationToken);
        if (claimed == 0)
        {
            await RevokeFamilyAsync(token.FamilyId, cancellationToken);
            return (RefreshOutcome.Reused, token.UserId, null);
        }

        var fresh = await IssueAsync(token.UserId, token.FamilyId, cancellationToken);
        return (RefreshOutcome.Rotated, token.UserId, fresh);
    }

    /// <summary>Revokes the family of the token with this secret; returns its user, or null for a secret that was never issued.</summary>
    public async Task<Guid?> RevokeBySecretAsync(string secret, CancellationToken cancellationToken)
    {
        var hash = Hash(secret);
        var token = await db.RefreshTokens.Where(t => t.TokenHash == hash).Select(t => new { t.FamilyId, t.UserId }).FirstOrDefaultAsync(cancellationToken);
        if (token is null)
        {
            return null;
        }

        await RevokeFamilyAsync(token.FamilyId, cancellationToken);
        return token.UserId;
    }

    public Task<int> RevokeAllForUserAsync(Guid userId, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        return db.RefreshTokens.Where(t => t.UserId == userId && t.RevokedAt == null)
            .ExecuteUpdateAsync(set => set.SetProperty(t => t.RevokedAt, now), cancellationToken);
    }

    private Task<int> RevokeFamilyAsync(Guid familyId, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        return db.RefreshTokens.Where(t => t.FamilyId == familyId && t.RevokedAt == null)
            .ExecuteUpdateAsync(set => set.SetProperty(t => t.RevokedAt, now), cancellationToken);
    }

    public static string Hash(string secret) => Convert.ToHexStringLower(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(secret)));

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
