using System.Diagnostics;
using Limen.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Limen.Libvirt.Tests;

/// <summary>
/// Live migration through the binding between simulated hosts 2 and 3 (and qemu:///system), with
/// the tiny guest: it keeps running (its uptime counts on, no second banner) on the target and is
/// gone from the source. The guest's folder is in host 2's DiskDir, which every host sees at the
/// same path, so its disk is shared storage (libvirt 9.0 still calls it unsafe: Unsafe).
/// </summary>
[Collection(SimulatedHostsCollection.Name)]
public sealed class MigrationTests(SimulatedHostsFixture hosts, ITestOutputHelper output)
{
    private static readonly TimeSpan BootTimeout = TimeSpan.FromSeconds(90);
    private const MigrationFlags SharedDisk = MigrationFlags.Live | MigrationFlags.PersistDestination | MigrationFlags.UndefineSource | MigrationFlags.Unsafe;
    private const int RunningMigrated = 2; // VIR_DOMAIN_RUNNING_MIGRATED

    [Fact]
    public void A_guest_moves_live_to_host3_and_back_to_host2_with_its_disk_copied_to_a_new_file()
    {
        using var two = LibvirtConnection.Open(hosts.Host2.Uri);
        using var three = LibvirtConnection.Open(hosts.Host3.Uri);
        using var guest = TinyGuest.Create(two, hosts.Host2.DiskDir, appendSerial: true);
        try
        {
            using var source = guest.Lookup();
            source.Create();
            guest.WaitForSerial(TinyGuest.Banner, BootTimeout);
            var before = guest.Uptime(source);

            var clock = Stopwatch.StartNew();
            using var onThree = source.MigrateTo(three, new MigrationParameters { MigrateUri = $"tcp://{hosts.Host3.Address}" }, SharedDisk);
            output.WriteLine($"host2 -> host3 (direct, shared disk): {clock.ElapsedMilliseconds} ms");

            Assert.Equal(guest.Uuid, onThree.Uuid);
            Assert.Equal((DomainState.Running, RunningMigrated), onThree.GetState());
            Assert.Null(two.LookupDomainByUuid(guest.Uuid));
            var job = onThree.GetJobStats(completed: true);
            output.WriteLine($"completed job on host3: {job}");
            Assert.Equal(DomainJobType.Completed, job.Type);
            Assert.NotNull(job.DowntimeMs);
            Assert.True(job.DataProcessed > 0, $"data processed {job.DataProcessed}");
            var after = guest.Uptime(onThree);
            Assert.True(after > before, $"uptime {before} s before, {after} s after the migration: the guest was restarted");
            Assert.Single(guest.BannerLines());

            // Back without shared storage: the disk is copied into a new file on host 2, named in the destination XML.
            var copy = Path.Combine(guest.Directory, "copied.qcow2");
            TinyGuest.Run("qemu-img", "create", "-q", "-f", "qcow2", copy, "1G");
            var emptySize = new FileInfo(copy).Length;
            var xml = onThree.GetXmlDesc(DomainXmlFlags.Migratable).Replace(guest.DiskPath, copy, StringComparison.Ordinal);
            clock.Restart();
            using var back = onThree.MigrateTo(two, new MigrationParameters { MigrateUri = $"tcp://{hosts.Host2.Address}", DestinationXml = xml, MigrateDisks = ["vda"] },
                MigrationFlags.Live | MigrationFlags.PersistDestination | MigrationFlags.UndefineSource | MigrationFlags.CopyStorageAll);
            output.WriteLine($"host3 -> host2 (direct, copy storage): {clock.ElapsedMilliseconds} ms");

            Assert.Equal((DomainState.Running, RunningMigrated), back.GetState());
            Assert.Null(three.LookupDomainByUuid(guest.Uuid));
            Assert.Equal(copy, Assert.Single(back.GetStats(DomainStatsTypes.Block).Blocks).Path);
            Assert.True(new FileInfo(copy).Length > emptySize + (1 << 20), $"{copy} holds {new FileInfo(copy).Length} bytes: nothing was copied");
            var last = guest.Uptime(back);
            Assert.True(last > after, $"uptime {after} s on host3, {last} s back on host2: the guest was restarted");
            Assert.Single(guest.BannerLines());
        }
        finally
        {
            RemoveEverywhere(guest.Uuid, two, three);
        }
    }

    [Fact]
    public async Task Job_stats_show_a_migrations_progress_and_aborting_it_leaves_the_guest_on_the_source()
    {
        using var two = LibvirtConnection.Open(hosts.Host2.Uri);
        using var three = LibvirtConnection.Open(hosts.Host3.Uri);
        using var guest = TinyGuest.Create(two, hosts.Host2.DiskDir, appendSerial: true);
        try
        {
            using var source = guest.Lookup();
            source.Create();
            guest.WaitForSerial(TinyGuest.Banner, BootTimeout);
            var before = guest.Uptime(source);

            // 1 MiB/s: ~90 MiB of the guest's memory would take a minute and a half.
            var parameters = new MigrationParameters { MigrateUri = $"tcp://{hosts.Host3.Address}", BandwidthMiBs = 1 };
            var migration = Task.Run(() => source.MigrateTo(three, parameters, SharedDisk));
            DomainJobInfo? progress = null;
            TinyGuest.WaitFor(() =>
            {
                var job = source.GetJobStats();
                progress = job;
                return migration.IsCompleted || job.DataProcessed > 0;
            }, TimeSpan.FromSeconds(60), "the migration to move data");
            Assert.False(migration.IsCompleted, $"the migration ended early: {migration.Exception}");
            output.WriteLine($"running job on host2: {progress}");
            Assert.Equal(DomainJobType.Unbounded, progress!.Type);
            Assert.True(progress.DataTotal > 100UL << 20, $"data total {progress.DataTotal}"); // 256 MiB of RAM
            Assert.True(progress.DataRemaining > 0 && progress.DataRemaining < progress.DataTotal, $"data remaining {progress.DataRemaining} of {progress.DataTotal}");
            Assert.NotNull(progress.MemoryRemaining);

            var clock = Stopwatch.StartNew();
            source.AbortJob();
            var failed = await Assert.ThrowsAsync<LibvirtException>(() => migration);
            output.WriteLine($"aborted after {clock.ElapsedMilliseconds} ms: {failed.Code} {failed.Function}: {failed.Message}");
            Assert.Equal(LibvirtErrorCode.OperationAborted, failed.Code);
            Assert.Equal("virDomainMigrate3", failed.Function);

            Assert.Equal(DomainState.Running, source.GetState().State);
            Assert.Null(three.LookupDomainByUuid(guest.Uuid));
            Assert.True(guest.Uptime(source) > before, "the guest on the source was restarted");
            Assert.Equal(DomainJobType.None, source.GetJobStats().Type);
            var noJob = Assert.Throws<LibvirtException>(source.AbortJob);
            Assert.Equal(LibvirtErrorCode.OperationInvalid, noJob.Code);
        }
        finally
        {
            RemoveEverywhere(guest.Uuid, two, three);
        }
    }

    [Fact]
    public void A_peer_to_peer_migration_is_driven_by_the_source_host()
    {
        using var two = LibvirtConnection.Open(hosts.Host2.Uri);
        using var three = LibvirtConnection.Open(hosts.Host3.Uri);
        using var guest = TinyGuest.Create(two, hosts.Host2.DiskDir, appendSerial: true);
        try
        {
            using var source = guest.Lookup();
            source.Create();
            guest.WaitForSerial(TinyGuest.Banner, BootTimeout);
            var before = guest.Uptime(source);

            var clock = Stopwatch.StartNew();
            var moved = $"{guest.Name}-moved";
            source.MigrateToUri(hosts.Host3.Uri, new MigrationParameters { DestinationName = moved }, SharedDisk | MigrationFlags.PeerToPeer);
            output.WriteLine($"host2 -> host3 (p2p): {clock.ElapsedMilliseconds} ms");

            Assert.Null(two.LookupDomainByUuid(guest.Uuid));
            using var target = three.LookupDomainByUuid(guest.Uuid);
            Assert.NotNull(target);
            Assert.Equal(moved, target.Name);
            Assert.Equal((DomainState.Running, RunningMigrated), target.GetState());
            Assert.True(guest.Uptime(target) > before, "the guest was restarted");

            // Refusals carry libvirt's message: the guest is no longer on host 2.
            var gone = Assert.Throws<LibvirtException>(() => source.MigrateToUri(hosts.Host3.Uri, new MigrationParameters(), SharedDisk | MigrationFlags.PeerToPeer));
            output.WriteLine($"{gone.Code}: {gone.Message}");
            Assert.Equal(LibvirtErrorCode.NoDomain, gone.Code);
        }
        finally
        {
            RemoveEverywhere(guest.Uuid, two, three);
        }
    }

    [Fact]
    public void Without_unsafe_a_shared_local_disk_is_refused_with_libvirts_message_and_nothing_moves()
    {
        using var two = LibvirtConnection.Open(hosts.Host2.Uri);
        using var three = LibvirtConnection.Open(hosts.Host3.Uri);
        using var guest = TinyGuest.Create(two, hosts.Host2.DiskDir, appendSerial: true);
        try
        {
            using var source = guest.Lookup();
            source.Create();

            var refused = Assert.Throws<LibvirtException>(() => source.MigrateTo(three,
                new MigrationParameters { MigrateUri = $"tcp://{hosts.Host3.Address}" }, SharedDisk & ~MigrationFlags.Unsafe));
            output.WriteLine($"{refused.Code}: {refused.Message}");
            Assert.Equal(LibvirtErrorCode.MigrateUnsafe, refused.Code);
            Assert.Contains("Migration without shared storage is unsafe", refused.Message, StringComparison.Ordinal);
            Assert.Equal(DomainState.Running, source.GetState().State);
            Assert.Null(three.LookupDomainByUuid(guest.Uuid));
        }
        finally
        {
            RemoveEverywhere(guest.Uuid, two, three);
        }
    }

    [Fact]
    public void A_guest_moves_from_the_local_host_to_host2_and_back()
    {
        using var local = LibvirtConnection.Open(TinyGuest.Uri);
        using var two = LibvirtConnection.Open(hosts.Host2.Uri);
        using var guest = TinyGuest.Create(local, hosts.Host2.DiskDir, appendSerial: true);
        try
        {
            using var source = guest.Lookup();
            source.Create();
            guest.WaitForSerial(TinyGuest.Banner, BootTimeout);
            var before = guest.Uptime(source);

            var clock = Stopwatch.StartNew();
            using var onTwo = source.MigrateTo(two, new MigrationParameters { MigrateUri = $"tcp://{hosts.Host2.Address}" }, SharedDisk);
            output.WriteLine($"local -> host2 (direct): {clock.ElapsedMilliseconds} ms, {onTwo.GetJobStats(completed: true)}");
            Assert.Equal((DomainState.Running, RunningMigrated), onTwo.GetState());
            Assert.Null(local.LookupDomainByUuid(guest.Uuid));
            var middle = guest.Uptime(onTwo);
            Assert.True(middle > before, "the guest was restarted on host2");

            // Into the local host, whose QEMU would listen on every address by default: loopback only.
            clock.Restart();
            using var home = onTwo.MigrateTo(local, new MigrationParameters { ListenAddress = "127.0.0.1", MigrateUri = "tcp://127.0.0.1" }, SharedDisk);
            output.WriteLine($"host2 -> local (direct): {clock.ElapsedMilliseconds} ms, {home.GetJobStats(completed: true)}");
            Assert.Equal((DomainState.Running, RunningMigrated), home.GetState());
            Assert.Null(two.LookupDomainByUuid(guest.Uuid));
            Assert.True(guest.Uptime(home) > middle, "the guest was restarted on the local host");
            Assert.Single(guest.BannerLines());
        }
        finally
        {
            RemoveEverywhere(guest.Uuid, local, two);
        }
    }

    // A failed test may leave the guest on any of the hosts, running or not, persistent or not.
    private static void RemoveEverywhere(Guid uuid, params LibvirtConnection[] connections)
    {
        foreach (var connection in connections)
        {
            using (var domain = connection.LookupDomainByUuid(uuid))
            {
                if (domain?.IsActive == true)
                {
                    domain.Destroy();
                }
            }
            // A transient domain is gone once destroyed; a persistent one stays defined.
            using (var domain = connection.LookupDomainByUuid(uuid))
            {
                domain?.Undefine(DomainUndefineFlags.SnapshotsMetadata);
            }
        }
    }
}
