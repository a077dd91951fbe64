namespace Limen.Data;

/// <summary>
/// One refresh token of a rotation family. Only the SHA-256 of the secret is stored; a token that
/// was already used (UsedAt set) and is presented again revokes its whole family.
/// </summary>
public sealed class RefreshToken
{
    public Guid Id { get; set; }
    public Guid UserId { get; set; }
    public Guid FamilyId { get; set; }
    public required string TokenHash { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset ExpiresAt { get; set; }
    public DateTimeOffset? UsedAt { get; set; }
    public DateTimeOffset? RevokedAt { get; set; }
}
