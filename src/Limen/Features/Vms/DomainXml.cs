using System.Xml.Linq;

namespace Limen.Features.Vms;

/// <summary>Everything a domain definition is made of, already validated and resolved to host paths.</summary>
public sealed record DomainSpec(
    string DomainName,
    Guid Uuid,
    string DomainType,
    string Title,
    int Vcpus,
    int MemoryMb,
    string DiskPath,
    string? CdromPath,
    IReadOnlyList<string> BootOrder,
    string? Network,
    string MacAddress,
    string SerialLogPath);

/// <summary>
/// Builds libvirt domain XML with an XML API (never by pasting user text into markup).
/// VNC has no listen address of its own: libvirt's vnc_listen (loopback by default) applies on
/// whichever host runs the VM, so the definition can migrate.
/// </summary>
public static class DomainXml
{
    public static string Build(DomainSpec spec)
    {
        var devices = new XElement("devices",
            new XElement("disk", new XAttribute("type", "file"), new XAttribute("device", "disk"),
                new XElement("driver", new XAttribute("name", "qemu"), new XAttribute("type", "qcow2")),
                new XElement("source", new XAttribute("file", spec.DiskPath)),
                new XElement("target", new XAttribute("dev", "vda"), new XAttribute("bus", "virtio"))));

        if (spec.CdromPath is not null)
        {
            devices.Add(new XElement("disk", new XAttribute("type", "file"), new XAttribute("device", "cdrom"),
                new XElement("driver", new XAttribute("name", "qemu"), new XAttribute("type", "raw")),
                new XElement("source", new XAttribute("file", spec.CdromPath)),
                new XElement("target", new XAttribute("dev", "sda"), new XAttribute("bus", "sata")),
                new XElement("readonly")));
        }

        if (spec.Network is not null)
        {
            devices.Add(new XElement("interface", new XAttribute("type", "network"),
                new XElement("source", new XAttribute("network", spec.Network)),
                new XElement("mac", new XAttribute("address", spec.MacAddress)),
                new XElement("model", new XAttribute("type", "virtio"))));
        }

        devices.Add(
            new XElement("serial", new XAttribute("type", "pty"),
                new XElement("log", new XAttribute("file", spec.SerialLogPath), new XAttribute("append", "on")),
                new XElement("target", new XAttribute("port", "0"))),
            new XElement("console", new XAttribute("type", "pty"),
                new XElement("target", new XAttribute("type", "serial"), new XAttribute("port", "0"))),
            new XElement("input", new XAttribute("type", "tablet"), new XAttribute("bus", "usb")),
            new XElement("graphics", new XAttribute("type", "vnc"), new XAttribute("port", "-1"), new XAttribute("autoport", "yes")),
            new XElement("video", new XElement("model", new XAttribute("type", "vga"))),
            new XElement("memballoon", new XAttribute("model", "virtio")));

        var os = new XElement("os", new XElement("type", new XAttribute("arch", "x86_64"), new XAttribute("machine", "q35"), "hvm"));
        foreach (var device in spec.BootOrder)
        {
            os.Add(new XElement("boot", new XAttribute("dev", device)));
        }

        var domain = new XElement("domain", new XAttribute("type", spec.DomainType),
            new XElement("name", spec.DomainName),
            new XElement("uuid", spec.Uuid.ToString()),
            new XElement("title", spec.Title),
            new XElement("memory", new XAttribute("unit", "MiB"), spec.MemoryMb),
            new XElement("vcpu", spec.Vcpus),
            os,
            new XElement("features", new XElement("acpi"), new XElement("apic")),
            new XElement("on_poweroff", "destroy"),
            new XElement("on_reboot", "restart"),
            new XElement("on_crash", "destroy"),
            devices);
        return domain.ToString();
    }
}
