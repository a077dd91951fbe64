using Microsoft.Extensions.Options;

namespace Limen.Hosting;

/// <summary>
/// This server's stable id: `Limen:ServerId` when set, else one generated on first start and kept
/// in the state directory (`server-id`), so a restarted server is the same server — it closes the
/// console sessions it relayed, and nobody else's.
/// </summary>
public sealed class ServerIdentity
{
    public ServerIdentity(IOptions<LimenOptions> options)
    {
        var configured = options.Value.ServerId;
        if (!string.IsNullOrWhiteSpace(configured))
        {
            Id = configured.Trim();
            return;
        }

        var path = Path.Combine(StateDirectory.Ensure(options.Value.StateDir), "server-id");
        if (!File.Exists(path))
        {
            StateDirectory.WriteSecretFile(path, "srv-" + Guid.NewGuid().ToString("N")[..12]);
        }

        Id = File.ReadAllText(path).Trim();
    }

    public string Id { get; }
}
