using System.Threading.RateLimiting;
using Limen.Hosting;
using Microsoft.Extensions.Options;

namespace Limen.Features.Auth;

/// <summary>
/// Login attempts per client IP and per username, each in a one-minute fixed window. Both must
/// admit an attempt; the refusal carries how long to wait (Retry-After). Registrations count
/// against the client IP's window too.
/// </summary>
public sealed class LoginThrottle : IDisposable
{
    private readonly PartitionedRateLimiter<string> byIp;
    private readonly PartitionedRateLimiter<string> byUsername;

    public LoginThrottle(IOptions<AuthOptions> options)
    {
        byIp = Create(options.Value.LoginAttemptsPerIpPerMinute);
        byUsername = Create(options.Value.LoginAttemptsPerUserPerMinute);
    }

    /// <returns>null when admitted, else the time to wait.</returns>
    public TimeSpan? TryAdmit(string clientIp, string username) =>
        TryAcquire((byIp, clientIp), (byUsername, username.ToLowerInvariant()));

    /// <summary>
    /// An attempt that names no existing account (a registration): it takes from the client's
    /// budget, which it shares with logins, and from no username's, so registering a name never
    /// locks its owner out.
    /// </summary>
    public TimeSpan? TryAdmitClient(string clientIp) => TryAcquire((byIp, clientIp));

    private static TimeSpan? TryAcquire(params (PartitionedRateLimiter<string> Limiter, string Key)[] buckets)
    {
        foreach (var (limiter, key) in buckets)
        {
            using var lease = limiter.AttemptAcquire(key);
            if (!lease.IsAcquired)
            {
                return lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter) ? retryAfter : TimeSpan.FromMinutes(1);
            }
        }

        return null;
    }

    public void Dispose()
    {
        byIp.Dispose();
        byUsername.Dispose();
    }

    private static PartitionedRateLimiter<string> Create(int permitsPerMinute) =>
        PartitionedRateLimiter.Create<string, string>(key => RateLimitPartition.GetFixedWindowLimiter(key, _ => new FixedWindowRateLimiterOptions
        {
            PermitLimit = permitsPerMinute,
            Window = TimeSpan.FromMinutes(1),
            QueueLimit = 0,
            AutoReplenishment = true,
        }));
}
