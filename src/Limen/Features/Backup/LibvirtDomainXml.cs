using Limen.Features.Hosts;
using Limen.Libvirt;
using Microsoft.Extensions.Logging.Abstractions;

namespace Limen.Features.Backup;

/// <summary>
/// VMs' domain XML for the archive, read over read-only connections to every configured host (a
/// backup never changes libvirt). A database without VMs needs no libvirt at all.
/// </summary>
public sealed class LibvirtDomainXml : IDisposable
{
    private readonly List<Hypervisor> hypervisors;

    public LibvirtDomainXml(IConfiguration configuration)
    {
        // Failures surface as exceptions with the reason; log lines would only garble the progress display.
        hypervisors = HostSetting.All(configuration)
            .Select(h => new Hypervisor(h.Uri, Hypervisor.ResolveDomainType(h.VirtualizationType, h.Uri), readOnly: true, NullLogger<Hypervisor>.Instance))
            .ToList();
    }

    /// <summary>
    /// The persistent (inactive) definition — what a redefine needs — of each of <paramref name="vmIds"/>
    /// that has a domain on one of <paramref name="hosts"/>; one listing per host instead of a lookup per VM.
    /// A host that cannot be reached fails the read: its VMs' definitions would be missing from the archive.
    /// </summary>
    public static IReadOnlyDictionary<Guid, string> Read(IEnumerable<Hypervisor> hosts, IReadOnlyCollection<Guid> vmIds)
    {
        var found = new Dictionary<Guid, string>();
        if (vmIds.Count == 0)
        {
            return found;
        }

        var wanted = vmIds.ToHashSet();
        foreach (var hypervisor in hosts)
        {
            hypervisor.Run(c =>
            {
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
            });
        }

        return found;
    }

    public IReadOnlyDictionary<Guid, string> Read(IReadOnlyCollection<Guid> vmIds) => Read(hypervisors, vmIds);

    public void Dispose()
    {
        foreach (var hypervisor in hypervisors)
        {
            hypervisor.Dispose();
        }
    }
}
