namespace Limen.Libvirt.Tests;

public sealed class SnapshotTests : IDisposable
{
    private readonly LibvirtConnection connection = LibvirtConnection.Open(TestDriver.Uri);

    public void Dispose() => connection.Dispose();

    [Fact]
    public void Snapshots_can_be_created_listed_reverted_and_deleted()
    {
        using var temp = TestDriver.Define(connection, "snap");
        var domain = temp.Domain;
        domain.Create();

        using var running = domain.CreateSnapshotXml("<domainsnapshot><name>while-running</name><description>d1</description></domainsnapshot>");
        domain.Destroy();
        using var stopped = domain.CreateSnapshotXml("<domainsnapshot><name>while-stopped</name></domainsnapshot>");

        Assert.Equal("while-running", running.Name);
        Assert.Equal(domain.Uuid, running.DomainUuid);
        Assert.Contains("<description>d1</description>", running.GetXmlDesc());
        Assert.Contains("<state>running</state>", running.GetXmlDesc());
        Assert.Contains("<state>shutoff</state>", stopped.GetXmlDesc());

        var all = domain.ListAllSnapshots();
        Assert.Equal(["while-running", "while-stopped"], all.Select(s => s.Name).Order());
        foreach (var s in all)
        {
            s.Dispose();
        }

        // Reverting to a snapshot taken while running brings the domain back running.
        domain.RevertToSnapshot(running);
        Assert.Equal(DomainState.Running, domain.GetState().State);

        domain.RevertToSnapshot(stopped);
        Assert.Equal(DomainState.Shutoff, domain.GetState().State);

        domain.RevertToSnapshot(running, SnapshotRevertFlags.Paused);
        Assert.Equal(DomainState.Paused, domain.GetState().State);

        using (var found = domain.LookupSnapshotByName("while-stopped"))
        {
            Assert.NotNull(found);
            found.Delete();
        }
        Assert.Null(domain.LookupSnapshotByName("while-stopped"));
        running.Delete();
        Assert.Empty(domain.ListAllSnapshots());
    }

    [Fact]
    public void Snapshot_name_must_be_unique()
    {
        using var temp = TestDriver.Define(connection, "snapdup");
        using var first = temp.Domain.CreateSnapshotXml("<domainsnapshot><name>same</name></domainsnapshot>");

        var error = Assert.Throws<LibvirtException>(
            () => temp.Domain.CreateSnapshotXml("<domainsnapshot><name>same</name></domainsnapshot>"));

        Assert.Equal("virDomainSnapshotCreateXML", error.Function);
        Assert.Contains("same", error.Message);
    }

    [Fact]
    public void Reverting_to_another_domains_snapshot_is_rejected()
    {
        using var a = TestDriver.Define(connection, "snapa");
        using var b = TestDriver.Define(connection, "snapb");
        using var snapshot = a.Domain.CreateSnapshotXml("<domainsnapshot/>");

        Assert.Throws<ArgumentException>(() => b.Domain.RevertToSnapshot(snapshot));
    }
}
