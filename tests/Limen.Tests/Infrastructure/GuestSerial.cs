using System.Text.RegularExpressions;
using System.Xml.Linq;
using Limen.Libvirt;

namespace Limen.Tests.Infrastructure;

/// <summary>
/// Types a shell command on a running tiny guest's serial console (its root shell on ttyS0) and
/// returns what it printed: the console's pty is a /dev/pts of this machine, whichever libvirt host
/// runs the guest. The command is framed by BEGIN/END markers whose echo cannot match (`BE""GIN`);
/// a newline before END, so output without one of its own still ends its line.
/// </summary>
public static partial class GuestSerial
{
    public static async Task<string> RunAsync(string hostUri, Guid domainUuid, string command)
    {
        var pty = PtyOf(hostUri, domainUuid);
        // sed stops at END, timeout bounds a guest that does not answer; raw + -echo so the host side adds nothing.
        const string script = """
            exec 3<>"$1"
            stty -F "$1" raw -echo
            printf '%s\r' "echo BE""GIN; $2; echo; echo EN""D" >&3
            timeout 8 sed -n '/^BEGIN/,/^END/{p;/^END/q}' <&3 || true
            """;
        var output = "";
        // Right after its banner (or a migration) the shell may not read its console yet: ask again.
        for (var attempt = 0; attempt < 3; attempt++)
        {
            output = await ExternalProcess.RunAsync("sh", "-c", script, "guest-serial", pty, command);
            var framed = Framed().Match(output.Replace("\r", "", StringComparison.Ordinal));
            if (framed.Success)
            {
                return framed.Groups[1].Value.Trim();
            }
        }

        Assert.Fail($"the guest did not answer '{command}' on {pty}: {output}");
        return "";
    }

    /// <summary>The guest's uptime in seconds, from /proc/uptime.</summary>
    public static async Task<double> UptimeAsync(string hostUri, Guid domainUuid) =>
        double.Parse((await RunAsync(hostUri, domainUuid, "cut -d' ' -f1 /proc/uptime")).Split('\n')[^1], System.Globalization.CultureInfo.InvariantCulture);

    private static string PtyOf(string hostUri, Guid domainUuid)
    {
        using var connection = LibvirtConnection.Open(hostUri);
        using var domain = connection.LookupDomainByUuid(domainUuid) ?? throw new InvalidOperationException($"no domain {domainUuid} on {hostUri}");
        var serial = XDocument.Parse(domain.GetXmlDesc()).Descendants("serial").First(s => (string?)s.Attribute("type") == "pty");
        return (string?)serial.Element("source")?.Attribute("path") ?? throw new InvalidOperationException($"domain {domainUuid} has no serial pty");
    }

    [GeneratedRegex(@"^BEGIN\n(.*?)\n?END", RegexOptions.Singleline | RegexOptions.Multiline)]
    private static partial Regex Framed();
}
