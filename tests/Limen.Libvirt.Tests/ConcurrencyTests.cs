namespace Limen.Libvirt.Tests;

public sealed class ConcurrencyTests
{
    [Fact]
    public async Task One_connection_serves_many_threads()
    {
        using var connection = LibvirtConnection.Open(TestDriver.Uri);
        const int workers = 8;
        const int rounds = 10;
        using var start = new Barrier(workers);

        var tasks = Enumerable.Range(0, workers).Select(w => Task.Factory.StartNew(() =>
        {
            start.SignalAndWait();
            for (var r = 0; r < rounds; r++)
            {
                using var temp = TestDriver.Define(connection, $"conc{w}");
                var domain = temp.Domain;
                domain.Create();
                Assert.Equal(DomainState.Running, domain.GetState().State);
                using (var again = connection.LookupDomainByUuid(domain.Uuid))
                {
                    Assert.Equal(domain.Name, again?.Name);
                }
                Assert.Null(connection.LookupDomainByUuid(Guid.NewGuid()));
                Assert.Throws<LibvirtException>(() => connection.DefineDomain("<domain"));
                Assert.Equal(DomainState.Running, domain.GetStats(DomainStatsTypes.State).State);
                domain.Destroy();
                Assert.Equal(DomainState.Shutoff, domain.GetState().State);
            }
        }, TaskCreationOptions.LongRunning)).ToArray();

        await Task.WhenAll(tasks);

        // Every worker cleaned up after itself.
        var left = connection.ListAllDomains();
        Assert.DoesNotContain(left, d => d.Name.StartsWith("limen-test-conc", StringComparison.Ordinal));
        foreach (var d in left)
        {
            d.Dispose();
        }
    }

    [Fact]
    public void Errors_are_reported_to_the_thread_that_caused_them()
    {
        // libvirt's last error is thread-local: a failure on one thread must never surface as, or
        // overwrite, another thread's error.
        using var connection = LibvirtConnection.Open(TestDriver.Uri);

        Parallel.For(0, 200, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            if (i % 2 == 0)
            {
                var e = Assert.Throws<LibvirtException>(() => connection.DefineDomain("<domain"));
                Assert.Equal(LibvirtErrorCode.XmlDetail, e.Code);
            }
            else
            {
                using var temp = TestDriver.Define(connection, "err");
                var e = Assert.Throws<LibvirtException>(temp.Domain.Resume);
                Assert.Equal("virDomainResume", e.Function);
                Assert.NotEqual(LibvirtErrorCode.XmlDetail, e.Code);
            }
        });
    }
}
