namespace Limen.Data;

/// <summary>
/// A libvirt host the control plane drives: the local one, those configured under Limen:Hosts
/// (source config: their settings live in the configuration, the row only gives them an id and a
/// mode) and those added through the API (source api: the row is all there is).
/// </summary>
public sealed class VmHost
{
    public Guid Id { get; set; }
    public required string Name { get; set; }
    public required string Uri { get; set; }
    /// <summary>The address on which this host's VNC consoles are reachable for the console proxy.</summary>
    public required string ConsoleAddress { get; set; }
    /// <summary>config or api (<see cref="HostSources"/>).</summary>
    public string Source { get; set; } = HostSources.Config;
    /// <summary>active or maintenance: placement skips a host in maintenance.</summary>
    public string Mode { get; set; } = HostModes.Active;
    /// <summary>Where QEMU migration streams to this host go; null = libvirt's default. An api host's own; a config host's from its options.</summary>
    public string? MigrationAddress { get; set; }
    /// <summary>An api host's disk folder (a config host's is in its options).</summary>
    public string? DiskDir { get; set; }
    /// <summary>An api host's auto, kvm or qemu.</summary>
    public string? VirtualizationType { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}

public static class HostSources
{
    public const string Config = "config";
    public const string Api = "api";
}

public static class HostModes
{
    public const string Active = "active";
    public const string Maintenance = "maintenance";
}
