using System.Xml.Linq;
using Limen.Tests.Infrastructure;

namespace Limen.Tests.Vms;

public sealed class VmNetworkTests
{
    [Fact]
    public async Task Each_vm_gets_a_virtio_nic_on_the_configured_network_with_its_own_mac()
    {
        // The test driver ships a network named "default"; no traffic flows in the test driver.
        await using var server = await LimenTestServer.StartAsync(new Dictionary<string, string?> { ["Limen:Hypervisor:Network"] = "default" });
        var image = await VmTestKit.RegisterBlankImageAsync(server);
        using var admin = server.Client(await server.AdminTokenAsync());
        var macs = new List<string>();
        foreach (var name in new[] { "nic-a", "nic-b" })
        {
            var vm = await VmTestKit.CreateVmAsync(admin, image, name);
            var id = vm.GetProperty("id").GetGuid();
            var nic = XDocument.Parse(VmTestKit.Libvirt(server, c =>
            {
                using var domain = c.LookupDomainByUuid(id)!;
                return domain.GetXmlDesc();
            })).Descendants("interface").Single();
            Assert.Equal("default", nic.Element("source")!.Attribute("network")!.Value);
            Assert.Equal("virtio", nic.Element("model")!.Attribute("type")!.Value);
            Assert.Equal(vm.GetProperty("mac_address").GetString(), nic.Element("mac")!.Attribute("address")!.Value);
            macs.Add(nic.Element("mac")!.Attribute("address")!.Value);
        }

        Assert.Equal(2, macs.Distinct().Count());
    }
}
