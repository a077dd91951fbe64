using Limen.Features.Hosts;
using Limen.Libvirt;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Limen.Features.Backup;

/// <summary>
/// VMs' domain XML for the archive, read over a read-only libvirt connection (a backup never
/// changes libvirt). A database without VMs needs no libvirt at all.
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

    /// <summary>
    /// The persistent (inactive) definition — what a redefine needs — of each of <paramref name="vmIds"/>
    /// that has a domain; one listing instead of a lookup per VM.
    /// </summary>
    public static IReadOnlyDictionary<Guid, string> Read(Hypervisor hypervisor, IReadOnlyCollection<Guid> vmIds)
    {
        if (vmIds.Count == 0)
        {
            return new Dictionary<Guid, string>();
        }

        var wanted = vmIds.ToHashSet();
        return hypervisor.Run(c =>
        {
            var found = new Dictionary<Guid, string>();
            foreach (var domain in c.ListAllDomains())
            {
                using (domain)
                {
                    if (wanted.Contains(domain.Uuid))
                    {
                        found[domain.Uuid] = domain.GetXmlDesc(DomainXmlFlags.Inactive);
                    }
                }
            }

            return found;
        });
    }

    public IReadOnlyDictionary<Guid, string> Read(IReadOnlyCollection<Guid> vmIds) => Read(hypervisor, vmIds);

    public void Dispose() => hypervisor.Dispose();
}
