using System.Diagnostics;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using Limen.Features.Backup;
using Limen.Tests.Infrastructure;

namespace Limen.Tests.Backup;

/// <summary>The archive's gzip, compressed in chunks on several threads, is one ordinary gzip stream that every reader takes.</summary>
public sealed class ParallelGzipTests
{
    [Theory]
    [InlineData(0)]                                      // nothing: a valid empty gzip stream
    [InlineData(1000)]                                   // less than one chunk
    [InlineData(ParallelGzipStream.ChunkSize * 3)]      // whole chunks only: the last one is empty
    [InlineData((ParallelGzipStream.ChunkSize * 5) + 12345)]
    public async Task Any_length_round_trips_through_dotnet_and_through_gzip(int length)
    {
        var data = Data(length);
        var file = Path.Combine(BackupTestKit.TempDir(), "data.gz");
        await using (var compressed = File.Create(file))
        await using (var gzip = new ParallelGzipStream(compressed))
        {
            // Odd-sized writes, so chunk boundaries fall inside writes.
            for (var at = 0; at < length; at += 77_777)
            {
                await gzip.WriteAsync(data.AsMemory(at, Math.Min(77_777, length - at)));
            }
        }

        await using (var input = File.OpenRead(file))
        await using (var gunzip = new GZipStream(input, CompressionMode.Decompress))
        using (var back = new MemoryStream())
        {
            await gunzip.CopyToAsync(back);
            Assert.Equal(data, back.ToArray());
        }

        // gzip itself checks the trailer's CRC and length, and that there is exactly one member.
        var (exitCode, output) = await RunAsync("gzip", "--test", "--verbose", file);
        Assert.True(exitCode == 0, output);
        (exitCode, var sha) = await RunAsync("sh", "-c", $"gzip -dc '{file}' | sha256sum");
        Assert.Equal(0, exitCode);
        Assert.StartsWith(Convert.ToHexStringLower(SHA256.HashData(data)), sha, StringComparison.Ordinal);
        if (length > ParallelGzipStream.ChunkSize)
        {
            // Compressible data is compressed (not stored), chunks and all.
            Assert.True(new FileInfo(file).Length < length * 0.8, $"{new FileInfo(file).Length} bytes for {length}");
        }
    }

    [Fact]
    public async Task A_backup_of_several_chunks_is_read_by_tar_restores_and_refuses_a_flipped_byte_before_touching_the_target()
    {
        // About 20 MB of dump and CSVs: many chunks, compressed on every core.
        var (source, _, archive) = await BackupTestKit.BackedUpWithAuditRowsAsync(60000);
        await using var sourceDatabase = source;

        // Debian's tar and sha256sum read it: every file as the manifest says.
        var extracted = BackupTestKit.TempDir();
        var (tarExit, tarOutput) = await RunAsync("tar", "-xzf", archive, "-C", extracted);
        Assert.True(tarExit == 0, tarOutput);
        var manifest = BackupManifest.Parse(File.ReadAllBytes(Path.Combine(extracted, "manifest.json")));
        Assert.True(manifest.Files.Single(f => f.Path == "metadata/audit_logs.csv").Size > 4 * ParallelGzipStream.ChunkSize);
        foreach (var file in manifest.Files)
        {
            Assert.Equal(file.Sha256, Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(Path.Combine(extracted, file.Path)))));
        }

        var (sumExit, sumOutput) = await RunAsync("sh", "-c", $"cd '{extracted}' && sha256sum -c manifest.json.sha256");
        Assert.True(sumExit == 0, sumOutput);

        await using var target = await TestDatabase.CreateAsync();
        var (exitCode, log) = await LimenProcess.RunAsync(BackupTestKit.Environment(target.ConnectionString, BackupTestKit.TempDir()), "restore", archive);
        Assert.True(exitCode == 0, log);
        Assert.Equal(60000, await target.ScalarAsync("SELECT count(*) FROM audit_logs"));

        // One flipped byte in the middle of the compressed stream: refused, and the target (not empty now) keeps its rows.
        var flipped = Path.Combine(BackupTestKit.TempDir(), Path.GetFileName(archive));
        File.Copy(archive, flipped);
        BackupTestKit.FlipByte(flipped);
        await BackupTestKit.ExecuteAsync(target.ConnectionString, "CREATE TABLE precious (note text); INSERT INTO precious VALUES ('still here')");
        (exitCode, log) = await LimenProcess.RunAsync(BackupTestKit.Environment(target.ConnectionString, BackupTestKit.TempDir()), "restore", flipped, "--yes");
        Assert.Equal(1, exitCode);
        Assert.Contains("REFUSED: the archive cannot be trusted", log, StringComparison.Ordinal);
        Assert.Contains("Nothing was restored.", log, StringComparison.Ordinal);
        Assert.Equal(1, await target.ScalarAsync("SELECT count(*) FROM precious"));
        Assert.Equal(60000, await target.ScalarAsync("SELECT count(*) FROM audit_logs"));
    }

    /// <summary>Text-like data that compresses to about 70 %, not the same 1 MiB over again.</summary>
    private static byte[] Data(int length)
    {
        var text = new StringBuilder(length + 64);
        for (var i = 0; text.Length < length; i++)
        {
            text.Append(System.Globalization.CultureInfo.InvariantCulture, $"{i},{Convert.ToHexStringLower(SHA256.HashData(BitConverter.GetBytes(i)))[..(i % 17)]},vm-{i % 1000}\n");
        }

        return Encoding.ASCII.GetBytes(text.ToString(0, length));
    }

    internal static async Task<(int ExitCode, string Output)> RunAsync(string file, params string[] args)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, await output + await error);
    }
}
