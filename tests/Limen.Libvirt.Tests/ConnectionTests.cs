namespace Limen.Libvirt.Tests;

public sealed class ConnectionTests
{
    [Fact]
    public void Open_test_driver_reports_host_facts()
    {
        using var connection = LibvirtConnection.Open(TestDriver.Uri);

        Assert.True(connection.IsAlive);
        Assert.Equal(TestDriver.Uri, connection.Uri);
        Assert.False(string.IsNullOrEmpty(connection.GetHostname()));
        Assert.True(connection.GetLibVersion() >= new Version(9, 0, 0));
        Assert.Contains("<capabilities>", connection.GetCapabilities());

        // The test driver's fixed node: 16 CPUs, 3 GB of memory, 1400 MHz "i686" (src/test/test_driver.c).
        var node = connection.GetNodeInfo();
        Assert.Equal(16, node.Cpus);
        Assert.Equal(1400, node.Mhz);
        Assert.Equal(3UL * 1024 * 1024, node.MemoryKiB);
        Assert.Equal("i686", node.Model);
    }

    [Fact]
    public void Open_unknown_driver_throws_libvirt_error()
    {
        var error = Assert.Throws<LibvirtException>(() => LibvirtConnection.Open("nosuchdriver:///system"));

        Assert.Equal("virConnectOpen", error.Function);
        Assert.NotEqual(LibvirtErrorCode.Ok, error.Code);
        Assert.False(string.IsNullOrWhiteSpace(error.Message));
    }

    [Fact]
    public void Keepalive_is_enabled_on_a_daemon_connection_only()
    {
        using var local = LibvirtConnection.Open(TestDriver.Uri);
        using var daemon = LibvirtConnection.Open("qemu:///system");

        Assert.False(local.SetKeepAlive(5, 3));
        Assert.True(daemon.SetKeepAlive(5, 3));
        Assert.True(daemon.IsAlive);
    }

    [Fact]
    public void Disposed_connection_refuses_calls()
    {
        var connection = LibvirtConnection.Open(TestDriver.Uri);
        connection.Dispose();

        Assert.False(connection.IsAlive);
        Assert.Throws<ObjectDisposedException>(() => connection.GetHostname());
    }

    [Fact]
    public void Domain_objects_outlive_their_connection_wrapper()
    {
        LibvirtDomain domain;
        using (var connection = LibvirtConnection.Open(TestDriver.Uri))
        {
            domain = connection.LookupDomainByName("test")!;
        }

        using (domain)
        {
            Assert.Equal(DomainState.Running, domain.GetState().State);
        }
    }

    [Fact]
    public void Node_cpu_and_memory_stats_are_reported_on_qemu()
    {
        // The test driver has no node statistics; they come from the real host.
        using var connection = LibvirtConnection.Open("qemu:///system");

        var cpu = connection.GetNodeCpuStats();
        Assert.True(cpu["idle"] > 0);
        Assert.True(cpu["user"] > 0);

        var memory = connection.GetNodeMemoryStats();
        Assert.True(memory["total"] > memory["free"]);
        Assert.True(memory["free"] > 0);
    }
}
