using System.Net;
using System.Net.Sockets;
using System.Xml.Linq;

namespace Limen.Features.RemoteConsole;

/// <summary>Where a running domain's VNC server listens, as libvirt reports it in the live domain XML.</summary>
public static class VncEndpoint
{
    /// <summary>
    /// A TCP endpoint (the graphics' listen address, or the host's console address when libvirt
    /// listens on a wildcard or does not say) or a unix socket; null when the domain has no VNC
    /// server running (no graphics, or autoport not yet resolved).
    /// </summary>
    public static EndPoint? FromDomainXml(string xml, string consoleAddress)
    {
        var graphics = XDocument.Parse(xml).Descendants("graphics").FirstOrDefault(g => (string?)g.Attribute("type") == "vnc");
        if (graphics is null)
        {
            return null;
        }

        var listen = graphics.Elements("listen").FirstOrDefault();
        var socket = (string?)graphics.Attribute("socket") ?? (listen is not null && (string?)listen.Attribute("type") == "socket" ? (string?)listen.Attribute("socket") : null);
        if (!string.IsNullOrEmpty(socket))
        {
            return new UnixDomainSocketEndPoint(socket);
        }

        if (!int.TryParse((string?)graphics.Attribute("port"), out var port) || port is <= 0 or > 65535)
        {
            return null;
        }

        var address = (string?)graphics.Attribute("listen") ?? (string?)listen?.Attribute("address");
        var host = string.IsNullOrEmpty(address) || address is "0.0.0.0" or "::" ? consoleAddress : address;
        return IPAddress.TryParse(host, out var ip) ? new IPEndPoint(ip, port) : new DnsEndPoint(host, port);
    }
}
