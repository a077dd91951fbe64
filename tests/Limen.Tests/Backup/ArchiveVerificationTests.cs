using System.Text;
using System.Text.Json.Nodes;
using System.Security.Cryptography;
using Limen.Features.Backup;
using Limen.Tests.Infrastructure;

namespace Limen.Tests.Backup;

/// <summary>Bad input: every way an archive can be untrustworthy is refused before anything is restored.</summary>
public sealed class ArchiveVerificationTests(ArchiveFixture fixture) : IClassFixture<ArchiveFixture>
{
    public static TheoryData<string> Files() =>
    [
        "database.dump", "manifest.json", "manifest.json.sha256", "metadata/vms.csv", "metadata/users.csv", "metadata/vm_snapshots.csv",
        "metadata/audit_logs.csv", "config/limen.json", "domains/",
    ];

    [Fact]
    public async Task The_untouched_archive_verifies()
    {
        using var archive = await VerifyAsync(fixture.Archive);
        Assert.Equal(BackupManifest.CurrentFormatVersion, archive.Manifest.FormatVersion);
        Assert.Contains(archive.Manifest.Files, f => f.Path == $"domains/{fixture.Seed.RunningVm}.xml");
    }

    [Fact]
    public async Task An_archive_compressed_by_a_single_gzip_stream_as_earlier_versions_wrote_it_still_verifies()
    {
        // Repack compresses with .NET's GZipStream on one thread, as Limen did before the parallel gzip.
        var earlier = BackupTestKit.Repack(fixture.Archive, _ => { });
        Assert.NotEqual(await File.ReadAllBytesAsync(fixture.Archive), await File.ReadAllBytesAsync(earlier));

        using var archive = await VerifyAsync(earlier);
        Assert.Equal(fixture.Backup.Manifest.Files, archive.Manifest.Files);
    }

    [Fact]
    public async Task The_files_a_restore_does_not_read_are_checked_but_not_written_out()
    {
        var restoreReads = RestoreRunner.FilesRead(configuration: false, domains: false);
        using (var archive = await RestoreRunner.VerifyAsync(fixture.Archive, new PlainSteps(TextWriter.Null), CancellationToken.None, restoreReads))
        {
            var written = Directory.GetFiles(archive.Dir, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(archive.Dir, f)).Order(StringComparer.Ordinal);
            Assert.Equal(["database.dump", "manifest.json", "manifest.json.sha256"], written);
            Assert.True(File.Exists(archive.PathOf(BackupManifest.DumpFile)));
            Assert.Throws<InvalidOperationException>(() => archive.PathOf("metadata/vms.csv"));
            Assert.Contains(archive.Manifest.Files, f => f.Path == "metadata/vms.csv");
        }

        var changed = BackupTestKit.Repack(fixture.Archive, dir => BackupTestKit.FlipByte(Path.Combine(dir, "metadata", "vms.csv")));
        var e = await Assert.ThrowsAsync<ArchiveRejectedException>(() =>
            RestoreRunner.VerifyAsync(changed, new PlainSteps(TextWriter.Null), CancellationToken.None, restoreReads));
        Assert.Contains("metadata/vms.csv: sha256", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(Files))]
    public async Task A_byte_flipped_in_any_file_is_refused(string file)
    {
        var changed = BackupTestKit.Repack(fixture.Archive, dir =>
        {
            var path = file.EndsWith('/') ? Directory.GetFiles(Path.Combine(dir, file)).Order(StringComparer.Ordinal).First() : Path.Combine(dir, file);
            BackupTestKit.FlipByte(path);
        });

        var e = await Assert.ThrowsAsync<ArchiveRejectedException>(() => VerifyAsync(changed));
        Assert.Matches("sha256|manifest.json|format", e.Message);
    }

    [Fact]
    public async Task A_byte_flipped_in_the_compressed_archive_is_refused()
    {
        var copy = Path.Combine(BackupTestKit.TempDir(), "flipped.tar.gz");
        File.Copy(fixture.Archive, copy);
        BackupTestKit.FlipByte(copy);
        await Assert.ThrowsAsync<ArchiveRejectedException>(() => VerifyAsync(copy));
    }

    [Theory]
    [InlineData(4)]        // only the gzip length trailer missing
    [InlineData(1024)]     // the end (manifest) cut off
    [InlineData(-2)]       // half of it
    public async Task A_truncated_archive_is_refused(int cut)
    {
        var bytes = await File.ReadAllBytesAsync(fixture.Archive);
        var keep = cut < 0 ? bytes.Length / -cut : bytes.Length - cut;
        var truncated = Path.Combine(BackupTestKit.TempDir(), "truncated.tar.gz");
        await File.WriteAllBytesAsync(truncated, bytes[..keep]);

        var e = await Assert.ThrowsAsync<ArchiveRejectedException>(() => VerifyAsync(truncated));
        Assert.Matches("truncated|damaged|missing|no manifest", e.Message);
    }

    [Fact]
    public async Task A_manifest_of_an_unknown_format_version_is_refused_even_with_consistent_checksums()
    {
        var changed = BackupTestKit.Repack(fixture.Archive, dir =>
        {
            var manifest = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "manifest.json")))!;
            manifest["format_version"] = 2;
            var bytes = Encoding.UTF8.GetBytes(manifest.ToJsonString());
            File.WriteAllBytes(Path.Combine(dir, "manifest.json"), bytes);
            File.WriteAllText(Path.Combine(dir, "manifest.json.sha256"), $"{Convert.ToHexStringLower(SHA256.HashData(bytes))}  manifest.json\n");
        });

        var e = await Assert.ThrowsAsync<ArchiveRejectedException>(() => VerifyAsync(changed));
        Assert.Contains("Unknown backup format version 2", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Archives_that_are_not_ours_are_refused()
    {
        var dir = BackupTestKit.TempDir();
        var random = Path.Combine(dir, "random.tar.gz");
        await File.WriteAllBytesAsync(random, RandomNumberGenerator.GetBytes(4096));
        Assert.Contains("not a gzip-compressed tar", (await Assert.ThrowsAsync<ArchiveRejectedException>(() => VerifyAsync(random))).Message, StringComparison.Ordinal);

        var content = Directory.CreateDirectory(Path.Combine(dir, "content")).FullName;
        await File.WriteAllTextAsync(Path.Combine(content, "database.sql"), "SELECT 1;");
        var noManifest = BackupTestKit.Pack(content, Path.Combine(dir, "no-manifest.tar.gz"));
        Assert.Contains("no manifest.json", (await Assert.ThrowsAsync<ArchiveRejectedException>(() => VerifyAsync(noManifest))).Message, StringComparison.Ordinal);

        var manifest = Encoding.UTF8.GetBytes("""{"format": "someone-elses-backup", "format_version": 1}""");
        await File.WriteAllBytesAsync(Path.Combine(content, "manifest.json"), manifest);
        await File.WriteAllTextAsync(Path.Combine(content, "manifest.json.sha256"), $"{Convert.ToHexStringLower(SHA256.HashData(manifest))}  manifest.json\n");
        var foreign = BackupTestKit.Pack(content, Path.Combine(dir, "foreign.tar.gz"));
        Assert.Contains("Not a Limen backup", (await Assert.ThrowsAsync<ArchiveRejectedException>(() => VerifyAsync(foreign))).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unlisted_files_and_paths_leaving_the_folder_are_refused()
    {
        var extra = BackupTestKit.Repack(fixture.Archive, dir => File.WriteAllText(Path.Combine(dir, "metadata", "extra.csv"), "a,b\n"));
        Assert.Contains("metadata/extra.csv: not listed in the manifest",
            (await Assert.ThrowsAsync<ArchiveRejectedException>(() => VerifyAsync(extra))).Message, StringComparison.Ordinal);

        var dir = BackupTestKit.Extract(fixture.Archive);
        var order = BackupTestKit.EntryOrder(fixture.Archive);
        var escape = Path.Combine(BackupTestKit.TempDir(), "escape.tar.gz");
        using (var file = File.Create(escape))
        using (var gzip = new System.IO.Compression.GZipStream(file, System.IO.Compression.CompressionLevel.Fastest))
        using (var tar = new System.Formats.Tar.TarWriter(gzip))
        {
            tar.WriteEntry(Path.Combine(dir, "database.dump"), "../database.dump");
            foreach (var name in order)
            {
                tar.WriteEntry(Path.Combine(dir, name), name);
            }
        }

        Assert.Contains("not a plain relative path", (await Assert.ThrowsAsync<ArchiveRejectedException>(() => VerifyAsync(escape))).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Limen_restore_refuses_a_damaged_archive_and_leaves_the_target_untouched()
    {
        var changed = BackupTestKit.Repack(fixture.Archive, dir => BackupTestKit.FlipByte(Path.Combine(dir, "database.dump")));
        await using var target = await TestDatabase.CreateAsync();
        var state = BackupTestKit.TempDir();

        var (exitCode, output) = await LimenProcess.RunAsync(BackupTestKit.Environment(target.ConnectionString, state), "restore", changed);

        Assert.Equal(1, exitCode);
        Assert.Contains("REFUSED: the archive cannot be trusted", output, StringComparison.Ordinal);
        Assert.Contains("database.dump: sha256", output, StringComparison.Ordinal);
        Assert.Contains("Nothing was restored.", output, StringComparison.Ordinal);
        Assert.Empty(await BackupTestKit.RelationsAsync(target.ConnectionString));
    }

    private static async Task<ExtractedArchive> VerifyAsync(string path) =>
        await RestoreRunner.VerifyAsync(path, new PlainSteps(TextWriter.Null), CancellationToken.None);
}
