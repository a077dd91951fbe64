using System.Text.RegularExpressions;
using Limen.Data;
using Microsoft.Extensions.Options;

namespace Limen.Features.Hosts;

/// <summary>One more libvirt host, configured by the operator under "Limen:Hosts:&lt;n&gt;".</summary>
public sealed class HostOptions
{
    public string Name { get; set; } = "";

    public string Uri { get; set; } = "";

    /// <summary>The address at which this host's VNC consoles are reachable from this server.</summary>
    public string ConsoleAddress { get; set; } = "";

    /// <summary>
    /// Where this host's VM disks and serial logs live. This server creates and deletes the files
    /// (qemu-img), and the host's QEMU opens them: the same path must reach the same folder on both
    /// (the same machine, or shared storage mounted at the same path).
    /// </summary>
    public string DiskDir { get; set; } = "";

    /// <summary>auto, kvm or qemu. auto judges this machine's KVM, so say kvm or qemu for a host elsewhere.</summary>
    public string VirtualizationType { get; set; } = "auto";

    /// <summary>The address QEMU migration streams to this host go to (a dedicated network); empty = libvirt's default.</summary>
    public string? MigrationAddress { get; set; }
}

/// <summary>The hosts beyond the local one: "Limen:Hosts" (a list; none by default).</summary>
public sealed class HostListOptions
{
    public const string Section = "Limen";

    public List<HostOptions> Hosts { get; set; } = [];
}

/// <summary>
/// What a registry entry is built from: the local host first, then the configured ones (source
/// config), then those added through the API (source api, from their rows).
/// </summary>
public sealed record HostSetting(string Name, string Uri, string ConsoleAddress, string? DiskDir, string VirtualizationType, bool IsLocal,
    string? MigrationAddress = null, string Source = HostSources.Config)
{
    public static IReadOnlyList<HostSetting> All(HypervisorOptions local, HostListOptions more) =>
    [
        new(local.Name, local.Uri, local.ConsoleAddress, local.DiskDir, local.VirtualizationType, true, Blank(local.MigrationAddress)),
        .. more.Hosts.Select(h => new HostSetting(h.Name, h.Uri, h.ConsoleAddress, h.DiskDir, h.VirtualizationType, false, Blank(h.MigrationAddress))),
    ];

    /// <summary>A host added through the API, as its row has it.</summary>
    public static HostSetting From(VmHost row) =>
        new(row.Name, row.Uri, row.ConsoleAddress, row.DiskDir, row.VirtualizationType ?? "auto", false, row.MigrationAddress, HostSources.Api);

    private static string? Blank(string? text) => string.IsNullOrWhiteSpace(text) ? null : text;

    public static IReadOnlyList<HostSetting> All(IConfiguration configuration) => All(
        configuration.GetSection(HypervisorOptions.Section).Get<HypervisorOptions>() ?? new HypervisorOptions(),
        configuration.GetSection(HostListOptions.Section).Get<HostListOptions>() ?? new HostListOptions());
}

/// <summary>Names the host and the setting that is wrong, at start.</summary>
public sealed partial class HostListValidation(IOptions<HypervisorOptions> local) : IValidateOptions<HostListOptions>
{
    public ValidateOptionsResult Validate(string? name, HostListOptions options)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        var uris = new HashSet<string>(StringComparer.Ordinal);
        var hosts = HostSetting.All(local.Value, options);
        for (var i = 0; i < hosts.Count; i++)
        {
            var host = hosts[i];
            var where = host.IsLocal ? HypervisorOptions.Section : $"Limen:Hosts:{i - 1}";
            var problem = HostRules.NameProblem(host.Name) is { } bad ? $"{where}:Name {bad}"
                : !names.Add(host.Name) ? $"{where}:Name '{host.Name}' is used by another host."
                : string.IsNullOrWhiteSpace(host.Uri) ? $"{where}:Uri is required."
                : !uris.Add(host.Uri) ? $"{where}:Uri '{host.Uri}' is used by another host."
                : string.IsNullOrWhiteSpace(host.ConsoleAddress) ? $"{where}:ConsoleAddress is required."
                : !host.IsLocal && string.IsNullOrWhiteSpace(host.DiskDir) ? $"{where}:DiskDir is required."
                : HostRules.VirtualizationTypeProblem(host.VirtualizationType) is { } type ? $"{where}:VirtualizationType {type}"
                : null;
            if (problem is not null)
            {
                return ValidateOptionsResult.Fail(problem);
            }
        }

        return ValidateOptionsResult.Success;
    }
}

/// <summary>What a host's settings may be, for the configuration and the hosts API alike.</summary>
public static partial class HostRules
{
    public static string? NameProblem(string? name) => name is not null && HostName().IsMatch(name)
        ? null
        : $"must be 1-63 letters, digits, '-' or '_' (got '{name}').";

    /// <summary>
    /// The libvirt URIs a host may be added by: qemu+tls:// and qemu+ssh:// for production,
    /// qemu+tcp:// for labs, this machine's qemu:///system, and libvirt's test driver (test:///…,
    /// test+unix:///…?socket=…) for tests. Anything else (a session daemon, another driver) is refused.
    /// </summary>
    public static string? UriProblem(string? uri) => uri is not null && AddableUri().IsMatch(uri)
        ? null
        : "uri must be a libvirt URI: qemu+tls://HOST/system, qemu+ssh://[USER@]HOST/system, qemu+tcp://HOST/system, qemu:///system or test:///… (test+unix:///…).";

    public static string? VirtualizationTypeProblem(string? type) => type is "auto" or "kvm" or "qemu"
        ? null
        : $"must be auto, kvm or qemu, not '{type}'.";

    /// <summary>A host name, an IPv4 or a bracket-less IPv6 address: what QEMU and VNC clients connect to.</summary>
    public static string? AddressProblem(string? address) => address is not null && Address().IsMatch(address)
        ? null
        : "must be a host name or an IP address.";

    /// <summary>An absolute path, as this server and the host's QEMU both reach it.</summary>
    public static string? DiskDirProblem(string? path) => path is { Length: > 1 and <= 1024 } && path.StartsWith('/') && !path.Contains('\0') && !path.Split('/').Contains("..")
        ? null
        : "disk_dir must be an absolute path without '..'.";

    [GeneratedRegex("^[A-Za-z0-9_-]{1,63}$")]
    private static partial Regex HostName();

    [GeneratedRegex(@"^(qemu\+(tls|ssh|tcp)://[A-Za-z0-9._\[\]:@-]+/system(\?[A-Za-z0-9._=&/%-]*)?|qemu:///system|test(\+unix)?:///[A-Za-z0-9._/-]+(\?[A-Za-z0-9._=&/%-]*)?)\z")]
    private static partial Regex AddableUri();

    [GeneratedRegex(@"^([A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*|[0-9A-Fa-f:.]{2,45})\z")]
    private static partial Regex Address();
}
