using System.Text.RegularExpressions;
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
}

/// <summary>The hosts beyond the local one: "Limen:Hosts" (a list; none by default).</summary>
public sealed class HostListOptions
{
    public const string Section = "Limen";

    public List<HostOptions> Hosts { get; set; } = [];
}

/// <summary>What the registry is built from: the local host first, then the configured ones.</summary>
public sealed record HostSetting(string Name, string Uri, string ConsoleAddress, string? DiskDir, string VirtualizationType, bool IsLocal)
{
    public static IReadOnlyList<HostSetting> All(HypervisorOptions local, HostListOptions more) =>
    [
        new(local.Name, local.Uri, local.ConsoleAddress, local.DiskDir, local.VirtualizationType, true),
        .. more.Hosts.Select(h => new HostSetting(h.Name, h.Uri, h.ConsoleAddress, h.DiskDir, h.VirtualizationType, false)),
    ];

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
            var problem = !HostName().IsMatch(host.Name) ? $"{where}:Name must be 1-63 letters, digits, '-' or '_' (got '{host.Name}')."
                : !names.Add(host.Name) ? $"{where}:Name '{host.Name}' is used by another host."
                : string.IsNullOrWhiteSpace(host.Uri) ? $"{where}:Uri is required."
                : !uris.Add(host.Uri) ? $"{where}:Uri '{host.Uri}' is used by another host."
                : string.IsNullOrWhiteSpace(host.ConsoleAddress) ? $"{where}:ConsoleAddress is required."
                : !host.IsLocal && string.IsNullOrWhiteSpace(host.DiskDir) ? $"{where}:DiskDir is required."
                : host.VirtualizationType is not ("auto" or "kvm" or "qemu") ? $"{where}:VirtualizationType must be auto, kvm or qemu, not '{host.VirtualizationType}'."
                : null;
            if (problem is not null)
            {
                return ValidateOptionsResult.Fail(problem);
            }
        }

        return ValidateOptionsResult.Success;
    }

    [GeneratedRegex("^[A-Za-z0-9_-]{1,63}$")]
    private static partial Regex HostName();
}
