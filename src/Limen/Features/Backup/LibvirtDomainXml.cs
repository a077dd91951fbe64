using Limen.Features.Hosts;
using Limen.Libvirt;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Limen.Features.Backup;

/// <summary>
/// VMs' domain XML for the archive, read over a read-only libvirt connection (a backup never
/// changes libvirt). The connection opens on the first VM, so a database without VMs needs no libvirt.
/// </summary>
public sealed class LibvirtDomainXml : IDisposable
{
    private readonly Hypervisor hypervisor;

    public LibvirtDomainXml(IConfiguration configuration)
    {
        var options = configuration.GetSection(HypervisorOptions.Section).Get<HypervisorOptions>() ?? new HypervisorOptions();
        options.ReadOnly = true;
        // Failures surface as exceptions with the reason; log lines would only garble the progress display.
        hypervisor = new Hypervisor(Options.Create(options), NullLogger<Hypervisor>.Instance);
    }

    /// <summary>The persistent (inactive) definition — what a redefine needs — or null when the VM has no domain.</summary>
    public static string? Read(Hypervisor hypervisor, Guid vmId) => hypervisor.Run(c =>
    {
        using var domain = c.LookupDomainByUuid(vmId);
        return domain?.GetXmlDesc(DomainXmlFlags.Inactive);
    });

    public string? Read(Guid vmId) => Read(hypervisor, vmId);

    public void Dispose() => hypervisor.Dispose();
}
