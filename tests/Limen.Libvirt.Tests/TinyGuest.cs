using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace Limen.Libvirt.Tests;

/// <summary>
/// A throw-away domain on qemu:///system booting guest/out/tiny-guest.qcow2 through a qcow2
/// overlay, under TCG (type='qemu': the /dev/kvm of these machines cannot run BIOS guests).
/// Dispose removes the domain and every file, whatever state the test left them in.
/// </summary>
internal sealed class TinyGuest : IDisposable
{
    public const string Uri = "qemu:///system";
    public const string Banner = "LIMEN-GUEST READY";

    private readonly bool appendSerial;

    private TinyGuest(LibvirtConnection connection, string directory, string name, Guid uuid, bool appendSerial)
    {
        this.appendSerial = appendSerial;
        Connection = connection;
        Directory = directory;
        Name = name;
        Uuid = uuid;
    }

    public LibvirtConnection Connection { get; private set; }
    public string Directory { get; }
    public string Name { get; }
    public Guid Uuid { get; }
    public string DiskPath => Path.Combine(Directory, "disk.qcow2");
    public string SerialLogPath => Path.Combine(Directory, "serial.log");

    /// <param name="parent">Where the guest's folder goes (a simulated host's DiskDir); a /tmp/limen-test-* folder when null.</param>
    /// <param name="appendSerial">
    /// Keep the serial log across QEMU processes (append='on'): a live migration starts a new QEMU
    /// on the target, which would otherwise truncate the log. Off by default, so a test that starts
    /// the domain again sees only the new boot's lines.
    /// </param>
    public static TinyGuest Create(LibvirtConnection connection, string? parent = null, bool appendSerial = false)
    {
        var baseImage = BuildBaseImage();
        var uuid = Guid.NewGuid();
        // QEMU runs as libvirt-qemu: the directory must be traversable by others.
        var directory = parent is null
            ? System.IO.Directory.CreateTempSubdirectory("limen-test-").FullName
            : System.IO.Directory.CreateDirectory(Path.Combine(parent, $"limen-test-{uuid:N}")).FullName;
        File.SetUnixFileMode(directory, (UnixFileMode)0b111_101_101);
        var guest = new TinyGuest(connection, directory, $"limen-test-{uuid:N}", uuid, appendSerial);
        try
        {
            Run("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", baseImage, guest.DiskPath);
            connection.DefineDomain(guest.Xml()).Dispose();
            return guest;
        }
        catch
        {
            guest.Dispose();
            throw;
        }
    }

    /// <summary>Looks the guest up (and removes it on dispose) through <paramref name="connection"/> from now on, e.g. after its host's libvirtd restarted.</summary>
    public void Reattach(LibvirtConnection connection) => Connection = connection;

    public LibvirtDomain Lookup() => Connection.LookupDomainByUuid(Uuid) ?? throw new InvalidOperationException($"{Name} is gone");

    public string SerialLog()
    {
        if (!File.Exists(SerialLogPath))
        {
            return "";
        }
        using var stream = new FileStream(SerialLogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        return new StreamReader(stream).ReadToEnd();
    }

    /// <summary>
    /// The guest's uptime in seconds, asked on its serial console (the pty of <paramref name="domain"/>'s
    /// current QEMU, on whichever host) and read from the serial log.
    /// </summary>
    public double Uptime(LibvirtDomain domain)
    {
        var pty = XDocument.Parse(domain.GetXmlDesc()).Descendants("serial").Single().Element("source")!.Attribute("path")!.Value;
        using var tty = new FileStream(pty, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, bufferSize: 0);
        // The shell may not read its console yet right after the banner: ask again until it answers.
        for (var attempt = 0; attempt < 5; attempt++)
        {
            var tag = $"UP{Guid.NewGuid():N}"[..12];
            // The tag and '=' are split by quotes, so the echoed command line never matches.
            tty.Write(Encoding.ASCII.GetBytes($"echo {tag}\"=\"$(cut -d' ' -f1 /proc/uptime)\r"));
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed < TimeSpan.FromSeconds(5))
            {
                var answer = Regex.Match(SerialLog(), $@"{tag}=(\d+\.\d+)");
                if (answer.Success)
                {
                    return double.Parse(answer.Groups[1].Value, CultureInfo.InvariantCulture);
                }
                Thread.Sleep(100);
            }
        }
        throw new TimeoutException($"{Name} did not answer on {pty}; serial log:\n{SerialLog()}");
    }

    public IEnumerable<string> BannerLines()
        => SerialLog().Split('\n').Where(l => l.Contains(TinyGuest.Banner, StringComparison.Ordinal));

    /// <summary>Waits until the serial log contains <paramref name="text"/>; returns how long that took.</summary>
    public TimeSpan WaitForSerial(string text, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (!SerialLog().Contains(text, StringComparison.Ordinal))
        {
            if (clock.Elapsed > timeout)
            {
                throw new TimeoutException($"no '{text}' on the serial console of {Name} after {timeout}; log:\n{SerialLog()}");
            }
            Thread.Sleep(50);
        }
        return clock.Elapsed;
    }

    public static void WaitFor(Func<bool> condition, TimeSpan timeout, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > timeout)
            {
                throw new TimeoutException($"timed out after {timeout} waiting for {what}");
            }
            Thread.Sleep(100);
        }
    }

    private string Xml() => $"""
        <domain type='qemu'>
          <name>{Name}</name>
          <uuid>{Uuid}</uuid>
          <memory unit='MiB'>256</memory>
          <vcpu>1</vcpu>
          <os>
            <type arch='x86_64' machine='q35'>hvm</type>
            <boot dev='hd'/>
          </os>
          <features><acpi/><apic/></features>
          <on_poweroff>destroy</on_poweroff>
          <on_reboot>restart</on_reboot>
          <on_crash>destroy</on_crash>
          <devices>
            <disk type='file' device='disk'>
              <driver name='qemu' type='qcow2'/>
              <source file='{DiskPath}'/>
              <target dev='vda' bus='virtio'/>
            </disk>
            <serial type='pty'>
              <log file='{SerialLogPath}' append='{(appendSerial ? "on" : "off")}'/>
              <target port='0'/>
            </serial>
            <console type='pty'><target type='serial' port='0'/></console>
            <memballoon model='virtio'/>
          </devices>
        </domain>
        """;

    // guest/build.sh is idempotent and quick when its outputs are current, so every run uses a
    // base image that matches the checked-in guest sources.
    private static string BuildBaseImage()
    {
        var root = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(root, "Limen.slnx")))
        {
            root = Path.GetDirectoryName(root) ?? throw new InvalidOperationException("repository root (Limen.slnx) not found");
        }
        Run(Path.Combine(root, "guest", "build.sh"));
        return Path.Combine(root, "guest", "out", "tiny-guest.qcow2");
    }

    internal static void Run(string program, params string[] arguments)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in arguments)
        {
            start.ArgumentList.Add(a);
        }
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{program} exited with {process.ExitCode}: {stdout.Result}{stderr}");
        }
    }

    public void Dispose()
    {
        try
        {
            if (Connection.LookupDomainByUuid(Uuid) is { } domain)
            {
                using (domain)
                {
                    if (domain.IsActive)
                    {
                        domain.Destroy();
                    }
                    domain.Undefine(DomainUndefineFlags.SnapshotsMetadata);
                }
            }
        }
        finally
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
    }
}
