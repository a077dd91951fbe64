using Limen.Data;
using Limen.Hosting;
using Limen.Web;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Limen.Features.Auth;

/// <summary>
/// Short-lived access tokens: ES256 JWTs with typ "at+jwt", issuer "limen", audience "limen-api".
/// Validation pins all three plus the algorithm, so no other token kind (refresh, console,
/// unsigned "alg: none", another key) passes as an access token.
/// </summary>
public sealed class AccessTokens(SigningKeyStore keys, IOptions<AuthOptions> options, TimeProvider clock)
{
    public const string Issuer = "limen";
    public const string Audience = "limen-api";
    public const string TokenType = "at+jwt";

    private readonly JsonWebTokenHandler handler = new() { SetDefaultTimesOnTokenCreation = false };

    public int LifetimeSeconds => options.Value.AccessTokenSeconds;

    public string Issue(User user)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        return handler.CreateToken(new SecurityTokenDescriptor
        {
            Issuer = Issuer,
            Audience = Audience,
            TokenType = TokenType,
            IssuedAt = now,
            NotBefore = now,
            Expires = now.AddSeconds(LifetimeSeconds),
            Claims = new Dictionary<string, object>
            {
                [CurrentUser.IdClaim] = user.Id.ToString(),
                [CurrentUser.NameClaim] = user.Username,
                [CurrentUser.RoleClaim] = user.Role,
                ["jti"] = Guid.NewGuid().ToString("N"),
            },
            SigningCredentials = new SigningCredentials(keys.Key, SecurityAlgorithms.EcdsaSha256),
        });
    }

    public TokenValidationParameters ValidationParameters() => new()
    {
        ValidIssuer = Issuer,
        ValidAudience = Audience,
        ValidTypes = [TokenType],
        ValidAlgorithms = [SecurityAlgorithms.EcdsaSha256],
        IssuerSigningKey = keys.Key,
        RequireSignedTokens = true,
        RequireExpirationTime = true,
        ClockSkew = TimeSpan.FromSeconds(30),
        NameClaimType = CurrentUser.NameClaim,
        RoleClaimType = CurrentUser.RoleClaim,
    };
}
