using System.Formats.Tar;
using System.IO.Compression;
using System.IO.Hashing;
using System.Text;
using CsCheck;
using Limen.Features.Backup;
using Limen.Tests.Infrastructure;
using Npgsql;

namespace Limen.Tests.Backup;

/// <summary>
/// The dump streamed into the archive while pg_dump runs, and the CSVs and row counts read from
/// it on the way: the pieces that make that possible, and the result against the server's own CSV.
/// </summary>
public sealed class DumpStreamingTests
{
    [Fact]
    public void Combining_two_crcs_gives_the_crc_of_the_joined_data()
    {
        Gen.Byte.Array[0, 5000].Select(Gen.Byte.Array[0, 5000]).Sample((a, b) =>
        {
            var joined = Crc32.HashToUInt32([.. a, .. b]);
            Assert.Equal(joined, Crc32Combine.Combine(Crc32.HashToUInt32(a), Crc32.HashToUInt32(b), b.Length));
        });
    }

    [Fact]
    public async Task A_reserved_block_filled_after_the_data_that_follows_it_reads_back_in_place_through_dotnet_and_gzip()
    {
        var before = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Range(0, 300_000).Select(i => $"{i},")));
        var after = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Range(0, 200_000).Select(i => $"row {i}\n")));
        var late = Enumerable.Range(0, 512).Select(i => (byte)(i * 7)).ToArray();
        var file = Path.Combine(BackupTestKit.TempDir(), "reserved.gz");
        await using (var output = File.Create(file))
        await using (var gzip = new ParallelGzipStream(output))
        {
            await gzip.WriteAsync(before);
            var slot = await gzip.ReserveAsync(late.Length, CancellationToken.None);
            await gzip.WriteAsync(after);
            slot.Fill(late);
        }

        await using (var input = File.OpenRead(file))
        await using (var gunzip = new GZipStream(input, CompressionMode.Decompress))
        using (var back = new MemoryStream())
        {
            await gunzip.CopyToAsync(back);
            Assert.Equal([.. before, .. late, .. after], back.ToArray());
        }

        var (exitCode, output2) = await ParallelGzipTests.RunAsync("gzip", "--test", file);
        Assert.True(exitCode == 0, output2);
    }

    [Theory]
    [InlineData(0L)]
    [InlineData(1234L)]
    [InlineData((1L << 33) - 1)]  // the largest 11-digit octal size
    [InlineData(9L << 30)]        // 9 GiB: GNU base-256
    public void A_ustar_header_is_read_back_by_dotnets_tar_reader(long size)
    {
        var time = new DateTimeOffset(2026, 12, 2, 1, 2, 3, TimeSpan.Zero);
        // Through gzip, as in an archive: not seekable, so the reader takes the size as given instead of seeking past the data.
        var compressed = new MemoryStream();
        using (var gzip = new GZipStream(compressed, CompressionMode.Compress, leaveOpen: true))
        {
            gzip.Write(BackupArchiveWriter.UstarHeader("database.dump", size, time));
        }

        compressed.Position = 0;
        using var stream = new GZipStream(compressed, CompressionMode.Decompress);
        using var reader = new TarReader(stream);
        var entry = reader.GetNextEntry(copyData: false)!;
        Assert.Equal("database.dump", entry.Name);
        Assert.Equal(size, entry.Length);
        Assert.Equal(TarEntryType.RegularFile, entry.EntryType);
        Assert.Equal(time, entry.ModificationTime);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, entry.Mode);
    }

    [Theory]
    [InlineData("COPY public.users (id, username, role) FROM stdin;\n", "id|username|role")]
    [InlineData("COPY public.\"odd table\" (\"Quoted, Name\", \"say \"\"hi\"\"\", plain) FROM stdin;\n", "Quoted, Name|say \"hi\"|plain")]
    public void Copy_column_lists_are_unquoted(string statement, string expected) =>
        Assert.Equal(expected, string.Join('|', CustomDumpReader.CopyColumns(statement)));

    [Fact]
    public async Task The_csvs_read_from_the_dump_equal_the_servers_csv_byte_for_byte_and_the_counts_match()
    {
        var (source, environment) = await BackupTestKit.MigratedDatabaseAsync();
        await using var sourceDatabase = source;
        // Every escape COPY text has and every reason CSV quotes: commas, quotes, CR, LF, tabs,
        // backslashes, empty strings against NULLs, non-ASCII, a lone "\.", plus many plain rows.
        await BackupTestKit.ExecuteAsync(source.ConnectionString, """
            INSERT INTO audit_logs (time, request_id, username, action, target_type, target_id, result, client_ip, user_agent, details)
            VALUES
              (now(), 'r1', 'a,b', 'vm.start', 'vm', 'say "hi"', 'success', NULL, E'line1\nline2\r\nend', '{"k": "v,\"w\""}'),
              (now(), 'r2', '', 'vm.stop', 'vm', E'tab\there', 'failure', '10.0.0.1', E'back\\slash \\N not null', '{}'),
              (now(), 'r3', 'ünïcødé ✓', 'vm.x', 'vm', '\.', 'success', NULL, NULL, NULL);
            """);
        await BackupTestKit.InsertAuditRowsAsync(source.ConnectionString, 30000);
        var output = BackupTestKit.TempDir();

        var (exitCode, log) = await LimenProcess.RunAsync(environment, "backup", "--output", output);

        Assert.True(exitCode == 0, log);
        Assert.Contains("4 files, ", log, StringComparison.Ordinal);
        Assert.Contains(", read from the dump", log, StringComparison.Ordinal);
        var dir = BackupTestKit.Extract(Assert.Single(Directory.GetFiles(output)));
        // The dump's row order is the table's physical order: the server's CSV without ORDER BY.
        foreach (var (table, columns) in new[] { ("audit_logs", "*"), ("vms", "*"), ("vm_snapshots", "*"), ("users", "id, username, role, disabled, created_at, updated_at") })
        {
            var expected = await ServerCsvAsync(source.ConnectionString, $"SELECT {columns} FROM {table}");
            Assert.Equal(expected, await File.ReadAllTextAsync(Path.Combine(dir, "metadata", table + ".csv")));
        }

        var manifest = BackupManifest.Parse(File.ReadAllBytes(Path.Combine(dir, "manifest.json")));
        foreach (var (table, count) in manifest.RowCounts)
        {
            Assert.Equal(await source.ScalarAsync($"SELECT count(*) FROM public.\"{table}\""), count);
        }

        Assert.Equal(30003, manifest.RowCounts["audit_logs"]);
        var (listExit, listing) = await ParallelGzipTests.RunAsync("/usr/lib/postgresql/15/bin/pg_restore", "--list", Path.Combine(dir, "database.dump"));
        Assert.True(listExit == 0, listing);
    }

    [Fact]
    public async Task A_fresh_target_is_loaded_while_the_archive_is_verified_and_a_file_damaged_after_the_dump_leaves_it_untouched()
    {
        var (source, _, archive) = await BackupTestKit.BackedUpWithAuditRowsAsync(20000);
        await using var sourceDatabase = source;
        Assert.Equal("database.dump", BackupTestKit.EntryOrder(archive)[0]);

        // A byte flipped in a CSV, which comes after the dump: pg_restore has had the whole dump but
        // its last bytes, and must not commit.
        var damaged = BackupTestKit.Repack(archive, dir => BackupTestKit.FlipByte(Path.Combine(dir, "metadata", "audit_logs.csv")));
        await using (var target = await TestDatabase.CreateAsync())
        {
            var targetEnvironment = BackupTestKit.Environment(target.ConnectionString, BackupTestKit.TempDir());
            var (exitCode, log) = await LimenProcess.RunAsync(targetEnvironment, "restore", damaged);

            Assert.Equal(1, exitCode);
            Assert.Contains("REFUSED: the archive cannot be trusted", log, StringComparison.Ordinal);
            Assert.Contains("metadata/audit_logs.csv: sha256", log, StringComparison.Ordinal);
            Assert.Empty(await BackupTestKit.RelationsAsync(target.ConnectionString));

            // The same target, the intact archive: loaded while verified, committed, counts match.
            (exitCode, log) = await LimenProcess.RunAsync(targetEnvironment, "restore", archive);

            Assert.True(exitCode == 0, log);
            Assert.Contains("loaded while the archive was verified", log, StringComparison.Ordinal);
            Assert.Equal(20000, await target.ScalarAsync("SELECT count(*) FROM audit_logs"));
        }
    }

    [Fact]
    public async Task A_dump_the_reader_cannot_follow_still_gives_csvs_and_counts_exported_apart_and_restores()
    {
        await using var server = await LimenTestServer.StartAsync();
        await BackupTestKit.SeedAsync(server);
        // A pg_dump that compresses despite --compress=0 (a later -Z wins): the reader refuses compressed archives.
        var bin = await BackupTestKit.PgBinWithAsync("exec $REAL/pg_dump \"$@\" ${1:+--compress=6}\n");
        var output = BackupTestKit.TempDir();
        var environment = BackupTestKit.Environment(server.Database.ConnectionString, server.StateDir);
        environment["Limen__Backup__PgBinDir"] = bin;

        var (exitCode, log) = await LimenProcess.RunAsync(environment, "backup", "--output", output);

        Assert.True(exitCode == 0, log);
        Assert.Contains(", exported apart", log, StringComparison.Ordinal);
        var archive = Assert.Single(Directory.GetFiles(output));
        var dir = BackupTestKit.Extract(archive);
        var manifest = BackupManifest.Parse(File.ReadAllBytes(Path.Combine(dir, "manifest.json")));
        Assert.Contains(manifest.Notes, n => n.Contains("the archive is compressed", StringComparison.Ordinal));
        Assert.Equal(await server.Database.ScalarAsync("SELECT count(*) FROM audit_logs"), manifest.RowCounts["audit_logs"]);
        Assert.Equal(await ServerCsvAsync(server.Database.ConnectionString, "SELECT * FROM vms ORDER BY created_at, id"),
            await File.ReadAllTextAsync(Path.Combine(dir, "metadata", "vms.csv")));

        await using var target = await TestDatabase.CreateAsync();
        (exitCode, log) = await LimenProcess.RunAsync(BackupTestKit.Environment(target.ConnectionString, BackupTestKit.TempDir()), "restore", archive);
        Assert.True(exitCode == 0, log);
        Assert.Equal(manifest.RowCounts["vms"], await target.ScalarAsync("SELECT count(*) FROM vms"));
    }

    private static async Task<string> ServerCsvAsync(string connectionString, string query)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        using var reader = await connection.BeginTextExportAsync($"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER)");
        return await reader.ReadToEndAsync();
    }

    [Fact]
    public async Task A_pipe_written_in_small_pieces_is_handed_on_whole_in_pieces_of_at_least_the_gathered_size()
    {
        // sh's printf writes each line on its own, as pg_dump writes its 4 KiB buffers.
        using var child = PgTools.Start("/bin/sh", ["-c", "i=0; while [ $i -lt 4000 ]; do printf 'line %05d\\n' $i; i=$((i+1)); done"], null);
        var expected = string.Concat(Enumerable.Range(0, 4000).Select(i => $"line {i:00000}\n"));
        var received = new MemoryStream();
        var sizes = new List<int>();
        await foreach (var piece in GatheredReads.ReadAsync(child.StandardOutput.BaseStream, 4096, CancellationToken.None))
        {
            sizes.Add(piece.Length);
            received.Write(piece.Span);
        }

        await child.WaitForExitAsync();
        Assert.Equal(expected, Encoding.ASCII.GetString(received.ToArray()));
        Assert.True(sizes.Count > 1, $"{sizes.Count} piece(s)");
        Assert.All(sizes[..^1], size => Assert.True(size >= 4096, $"a piece of {size} bytes before the end"));
    }

    [Fact]
    public async Task A_reader_that_stops_early_returns_at_once_while_the_writer_still_writes()
    {
        // A writer that would go on for a minute: the consumer stops after its first piece, then ends the writer.
        using var child = PgTools.Start("/bin/sh", ["-c", "while :; do echo 0123456789abcdef; sleep 0.01; done"], null);
        var stopped = Task.Run(async () =>
        {
            await foreach (var piece in GatheredReads.ReadAsync(child.StandardOutput.BaseStream, 64, CancellationToken.None))
            {
                Assert.True(piece.Length >= 64);
                break;
            }
        });
        await stopped.WaitAsync(TimeSpan.FromSeconds(30));
        child.Kill();
        await child.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task Debian_tools_are_found_by_their_folder_and_the_folder_names_the_version_pg_dump_reports()
    {
        var tools = await PgTools.ResolveAsync(null, 0, CancellationToken.None);

        Assert.Equal($"/usr/lib/postgresql/{tools.Major}/bin", tools.BinDir);
        Assert.StartsWith($"pg_dump (PostgreSQL) {tools.Major}.", await tools.DumpVersionAsync(CancellationToken.None), StringComparison.Ordinal);
        // Asked once: the same answer, not a second process.
        Assert.Same(tools.DumpVersionAsync(CancellationToken.None), tools.DumpVersionAsync(CancellationToken.None));
    }
}
