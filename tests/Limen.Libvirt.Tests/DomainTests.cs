namespace Limen.Libvirt.Tests;

public sealed class DomainTests : IDisposable
{
    private readonly LibvirtConnection connection = LibvirtConnection.Open(TestDriver.Uri);

    public void Dispose() => connection.Dispose();

    [Fact]
    public void Built_in_test_domain_is_listed_and_running()
    {
        var domains = connection.ListAllDomains();
        try
        {
            var test = Assert.Single(domains, d => d.Name == "test");
            Assert.Equal(DomainState.Running, test.GetState().State);
            Assert.True(test.IsActive);
            Assert.Contains(domains, d => d.Name == "test");
            var running = connection.ListAllDomains(ListDomainsFlags.Active);
            Assert.Contains(running, d => d.Uuid == test.Uuid);
            foreach (var d in running)
            {
                d.Dispose();
            }
        }
        finally
        {
            foreach (var d in domains)
            {
                d.Dispose();
            }
        }
    }

    [Fact]
    public void Defined_domain_goes_through_start_suspend_resume_destroy_undefine()
    {
        var uuid = Guid.NewGuid();
        var name = TestDriver.UniqueName("life");
        var domain = connection.DefineDomain(TestDriver.DomainXml(name, uuid));
        try
        {
            Assert.Equal(uuid, domain.Uuid);
            Assert.Equal(name, domain.Name);
            Assert.Equal(DomainState.Shutoff, domain.GetState().State);
            Assert.False(domain.IsActive);

            domain.Create();
            Assert.Equal(DomainState.Running, domain.GetState().State);
            Assert.True(domain.IsActive);

            domain.Suspend();
            Assert.Equal(DomainState.Paused, domain.GetState().State);

            domain.Resume();
            Assert.Equal(DomainState.Running, domain.GetState().State);

            domain.Reboot();
            Assert.Equal(DomainState.Running, domain.GetState().State);

            domain.Shutdown();
            var (state, reason) = domain.GetState();
            Assert.Equal(DomainState.Shutoff, state);
            Assert.Equal(1, reason); // VIR_DOMAIN_SHUTOFF_SHUTDOWN

            domain.Create();
            domain.Destroy();
            (state, reason) = domain.GetState();
            Assert.Equal(DomainState.Shutoff, state);
            Assert.Equal(2, reason); // VIR_DOMAIN_SHUTOFF_DESTROYED

            domain.Undefine();
            Assert.Null(connection.LookupDomainByUuid(uuid));
            Assert.Null(connection.LookupDomainByName(name));
        }
        finally
        {
            if (connection.LookupDomainByUuid(uuid) is { } leftover)
            {
                using (leftover)
                {
                    if (leftover.IsActive)
                    {
                        leftover.Destroy();
                    }
                    leftover.Undefine();
                }
            }
            domain.Dispose();
        }
    }

    [Fact]
    public void Lookups_find_the_same_domain_by_uuid_and_name()
    {
        using var temp = TestDriver.Define(connection, "lookup");

        using var byUuid = connection.LookupDomainByUuid(temp.Domain.Uuid);
        using var byName = connection.LookupDomainByName(temp.Domain.Name);

        Assert.NotNull(byUuid);
        Assert.NotNull(byName);
        Assert.Equal(temp.Domain.Name, byUuid.Name);
        Assert.Equal(temp.Domain.Uuid, byName.Uuid);
    }

    [Fact]
    public void Lookup_of_missing_domain_returns_null()
    {
        Assert.Null(connection.LookupDomainByUuid(Guid.NewGuid()));
        Assert.Null(connection.LookupDomainByName("limen-test-does-not-exist"));
    }

    [Fact]
    public void Invalid_xml_throws_with_libvirts_message_and_code()
    {
        var error = Assert.Throws<LibvirtException>(() => connection.DefineDomain("<domain type='test'><name>broken"));

        Assert.Equal(LibvirtErrorCode.XmlDetail, error.Code);
        Assert.Equal("virDomainDefineXML", error.Function);
        Assert.Contains("Premature end of data", error.Message);
    }

    [Fact]
    public void Suspending_a_stopped_domain_fails_with_libvirts_error()
    {
        using var temp = TestDriver.Define(connection, "suspend");

        var error = Assert.Throws<LibvirtException>(temp.Domain.Suspend);

        // The test driver reports this as an internal error; QEMU's driver says OPERATION_INVALID.
        Assert.Equal(LibvirtErrorCode.InternalError, error.Code);
        Assert.Equal("virDomainSuspend", error.Function);
        Assert.Contains("not running", error.Message);
    }

    [Fact]
    public void Defining_a_second_domain_with_a_taken_name_fails()
    {
        using var temp = TestDriver.Define(connection, "dup");

        var error = Assert.Throws<LibvirtException>(
            () => connection.DefineDomain(TestDriver.DomainXml(temp.Domain.Name, Guid.NewGuid())));

        Assert.Equal(LibvirtErrorCode.OperationFailed, error.Code);
        Assert.Contains(temp.Domain.Name, error.Message);
    }

    [Fact]
    public void Info_and_xml_describe_the_definition()
    {
        using var temp = TestDriver.Define(connection, "info");
        temp.Domain.Create();

        var info = temp.Domain.GetInfo();
        Assert.Equal(DomainState.Running, info.State);
        Assert.Equal(65536UL, info.MaxMemoryKiB);
        Assert.Equal(65536UL, info.MemoryKiB);
        Assert.Equal(2, info.VirtualCpus);

        var xml = temp.Domain.GetXmlDesc();
        Assert.Contains($"<name>{temp.Domain.Name}</name>", xml);
        Assert.Contains($"<uuid>{temp.Domain.Uuid}</uuid>", xml);
        Assert.Contains("<name>", temp.Domain.GetXmlDesc(DomainXmlFlags.Inactive));
    }

    [Fact]
    public void Undefine_flags_are_passed_through()
    {
        var temp = TestDriver.Define(connection, "undef");
        using var snapshot = temp.Domain.CreateSnapshotXml("<domainsnapshot><name>s1</name></domainsnapshot>");

        // libvirt refuses to orphan snapshot metadata unless asked to delete it too.
        var error = Assert.Throws<LibvirtException>(() => temp.Domain.Undefine());
        Assert.Equal(LibvirtErrorCode.OperationInvalid, error.Code);

        temp.Domain.Undefine(DomainUndefineFlags.SnapshotsMetadata);
        Assert.Null(connection.LookupDomainByUuid(temp.Domain.Uuid));
        temp.Domain.Dispose();
    }
}
