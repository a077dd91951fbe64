using System.Buffers.Binary;
using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace Limen.Features.Backup;

/// <summary>
/// The archive on disk: limen-backup-&lt;UTC timestamp&gt;.tar.gz holding the staged files, then
/// manifest.json and its checksum last. Written under a temporary name and renamed only when
/// complete; read back only after every byte has been checked.
/// </summary>
public static partial class BackupArchive
{
    public const string NamePrefix = "limen-backup-";
    public const string Extension = ".tar.gz";

    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode OwnerOnlyDir = OwnerOnly | UnixFileMode.UserExecute;

    public static string FileName(DateTimeOffset createdAt) => $"{NamePrefix}{createdAt.UtcDateTime:yyyyMMdd'T'HHmmss'Z'}{Extension}";

    /// <summary>A folder only the owner can read: archives hold usernames, audit trails and password hashes (in the dump).</summary>
    public static string EnsurePrivateDirectory(string path)
    {
        var full = Path.GetFullPath(path);
        if (!Directory.Exists(full))
        {
            Directory.CreateDirectory(full, OwnerOnlyDir);
        }

        return full;
    }

    public static string CreateTemporaryDirectory(string parent, string prefix)
    {
        var dir = Path.Combine(parent, $"{prefix}{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir, OwnerOnlyDir);
        return dir;
    }

    /// <summary>
    /// Writes every file under <paramref name="stagingDir"/> and then the manifest to
    /// <paramref name="finalPath"/> (see <see cref="BackupArchiveWriter"/>); the manifest is made by
    /// <paramref name="describe"/> from the files' sizes and hashes.
    /// </summary>
    public static async Task<(BackupManifest Manifest, long Size)> WriteAsync(
        string stagingDir, DateTimeOffset createdAt, Func<List<ManifestFile>, BackupManifest> describe, string finalPath, Action<double> progress,
        CancellationToken cancellationToken)
    {
        await using var writer = BackupArchiveWriter.Create(finalPath, createdAt);
        await writer.WriteStagedAsync(stagingDir, progress, cancellationToken);
        return await writer.CompleteAsync(describe, cancellationToken);
    }

    /// <summary>
    /// Extracts <paramref name="archivePath"/> into a private temporary folder and checks it: gzip
    /// intact and complete, only plain files with safe names, manifest.json matching its checksum,
    /// a known format version, and every file present with the manifest's size and sha256 — and
    /// nothing unlisted. Throws <see cref="ArchiveRejectedException"/> naming every problem found.
    /// </summary>
    /// <param name="extract">
    /// The files the caller will read; the others are checked just the same but not written out
    /// (a restore reads none of the metadata CSVs, as large as the dump; perf had its page-cache
    /// copies at a tenth of a restore's CPU samples, half of them the CSVs'). Null extracts every file.
    /// </param>
    /// <param name="feed">Told how far the dump has been written out, so it can be loaded while the rest is checked.</param>
    public static async Task<ExtractedArchive> OpenAsync(
        string archivePath, Action<double> progress, CancellationToken cancellationToken, Func<string, bool>? extract = null, DumpFeed? feed = null)
    {
        var path = Path.GetFullPath(archivePath);
        if (!File.Exists(path))
        {
            throw new ArchiveRejectedException($"{path} does not exist.");
        }

        var dir = CreateTemporaryDirectory(Path.GetTempPath(), "limen-restore-");
        try
        {
            // Verification itself reads the manifest and its checksum from the folder; the feed reads the dump's file.
            Func<string, bool> written = name => name is BackupManifest.FileName or BackupManifest.ChecksumFileName
                || (feed is not null && name == BackupManifest.DumpFile) || extract is null || extract(name);
            var extracted = await ExtractAsync(path, dir, written, progress, feed, cancellationToken);
            var manifest = Verify(dir, extracted);
            return new ExtractedArchive(path, new FileInfo(path).Length, dir, manifest, extracted.Keys.Where(written).ToHashSet(StringComparer.Ordinal));
        }
        catch
        {
            Directory.Delete(dir, recursive: true);
            throw;
        }
    }

    private static async Task<Dictionary<string, ManifestFile>> ExtractAsync(
        string path, string dir, Func<string, bool> written, Action<double> progress, DumpFeed? feed, CancellationToken cancellationToken)
    {
        // GZipStream reads its input 8 KiB at a time; past FileStream's default 4 KiB buffer each such
        // read would be a thread-pool hop (24,000 for a 200 MB archive). With 1 MiB buffered, one per MiB.
        await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 20);
        var header = new byte[2];
        if (file.Length < 18 || await file.ReadAsync(header, cancellationToken) != 2 || header[0] != 0x1f || header[1] != 0x8b)
        {
            throw new ArchiveRejectedException($"{path} is not a gzip-compressed tar archive, so not a Limen backup.");
        }

        // gzip ends with the uncompressed length mod 2^32. .NET's GZipStream checks the CRC when the
        // trailer is there but reports a cut-off stream as a normal end, so we compare the length ourselves.
        file.Seek(-4, SeekOrigin.End);
        var trailer = new byte[4];
        await file.ReadExactlyAsync(trailer, cancellationToken);
        var expectedLength = BinaryPrimitives.ReadUInt32LittleEndian(trailer);
        file.Seek(0, SeekOrigin.Begin);

        var files = new Dictionary<string, ManifestFile>(StringComparer.Ordinal);
        try
        {
            await using var gzip = new GZipStream(file, CompressionMode.Decompress, leaveOpen: true);
            var counted = new CountingStream(gzip);
            await using (var tar = new TarReader(counted, leaveOpen: true))
            {
                byte[][] buffers = [new byte[1 << 20], new byte[1 << 20]];
                while (await tar.GetNextEntryAsync(copyData: false, cancellationToken) is { } entry)
                {
                    if (entry.EntryType == TarEntryType.Directory)
                    {
                        continue;
                    }

                    if (entry.EntryType is not (TarEntryType.RegularFile or TarEntryType.V7RegularFile))
                    {
                        throw new ArchiveRejectedException($"Not a Limen backup: entry '{entry.Name}' is a {entry.EntryType}; Limen archives hold plain files only.");
                    }

                    if (!SafeName().IsMatch(entry.Name) || entry.Name.Split('/').Any(s => s is "." or ".."))
                    {
                        throw new ArchiveRejectedException($"Not a Limen backup: entry name '{entry.Name}' is not a plain relative path.");
                    }

                    if (files.ContainsKey(entry.Name))
                    {
                        throw new ArchiveRejectedException($"Not a Limen backup: '{entry.Name}' appears twice.");
                    }

                    using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                    long size = 0;
                    var fed = feed is not null && entry.Name == BackupManifest.DumpFile ? feed : null;
                    await using (var output = written(entry.Name) ? CreateExtracted(dir, entry.Name) : null)
                    {
                        fed?.Started(output!.Name);
                        if (entry.DataStream is { } data)
                        {
                            // Inflating the next buffer and hashing + writing the last one run side by side
                            // (two cores instead of one); still one pass, still all before anything is restored.
                            var pending = Task.CompletedTask;
                            int read;
                            while ((read = await data.ReadAsync(buffers[0], cancellationToken)) > 0)
                            {
                                await pending;
                                var (full, count, upTo) = (buffers[0], read, size + read);
                                pending = Task.Run(() =>
                                {
                                    hash.AppendData(full, 0, count);
                                    output?.Write(full, 0, count);
                                    fed?.Wrote(upTo);
                                }, cancellationToken);
                                (buffers[0], buffers[1]) = (buffers[1], buffers[0]);
                                size += read;
                            }

                            await pending;
                        }

                        fed?.Completed();
                    }

                    if (size != entry.Length)
                    {
                        throw new ArchiveRejectedException($"The archive is truncated: '{entry.Name}' ends after {size} of {entry.Length} bytes.");
                    }

                    files[entry.Name] = new ManifestFile(entry.Name, size, Convert.ToHexStringLower(hash.GetHashAndReset()));
                    progress((double)file.Position / file.Length);
                }
            }

            // Read what follows the last entry (end-of-archive blocks) so the length covers the whole stream.
            await counted.CopyToAsync(Stream.Null, cancellationToken);
            if ((uint)counted.BytesRead != expectedLength)
            {
                throw new ArchiveRejectedException("The archive is truncated: the gzip stream ends early (its length trailer does not match).");
            }
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or FormatException)
        {
            throw new ArchiveRejectedException($"The archive is damaged or truncated: {e.Message}");
        }

        progress(1);
        return files;
    }

    /// <summary>A new file only the owner can read, unbuffered: what a write returned for is in the file, where the dump's feed finds it.</summary>
    private static FileStream CreateExtracted(string dir, string name)
    {
        var target = Path.Combine(dir, name);
        Directory.CreateDirectory(Path.GetDirectoryName(target)!, OwnerOnlyDir);
        return new FileStream(target, new FileStreamOptions
        {
            Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = OwnerOnly, BufferSize = 0, Share = FileShare.Read,
        });
    }

    private static BackupManifest Verify(string dir, Dictionary<string, ManifestFile> files)
    {
        if (!files.TryGetValue(BackupManifest.FileName, out var manifestFile))
        {
            throw new ArchiveRejectedException("Not a Limen backup: the archive has no manifest.json.");
        }

        if (!files.ContainsKey(BackupManifest.ChecksumFileName))
        {
            throw new ArchiveRejectedException($"The archive has no {BackupManifest.ChecksumFileName}: it is truncated or not a Limen backup.");
        }

        var recorded = File.ReadAllText(Path.Combine(dir, BackupManifest.ChecksumFileName)).Split(' ', 2)[0].Trim();
        if (!string.Equals(recorded, manifestFile.Sha256, StringComparison.Ordinal))
        {
            throw new ArchiveRejectedException($"manifest.json does not match {BackupManifest.ChecksumFileName}: the manifest was altered or damaged.");
        }

        var manifest = BackupManifest.Parse(File.ReadAllBytes(Path.Combine(dir, BackupManifest.FileName)));
        var problems = new List<string>();
        var listed = new HashSet<string>(StringComparer.Ordinal) { BackupManifest.FileName, BackupManifest.ChecksumFileName };
        foreach (var expected in manifest.Files)
        {
            listed.Add(expected.Path);
            if (!files.TryGetValue(expected.Path, out var actual))
            {
                problems.Add($"{expected.Path}: listed in the manifest but missing from the archive");
            }
            else if (actual.Size != expected.Size)
            {
                problems.Add($"{expected.Path}: {actual.Size} bytes, the manifest says {expected.Size}");
            }
            else if (!string.Equals(actual.Sha256, expected.Sha256, StringComparison.Ordinal))
            {
                problems.Add($"{expected.Path}: sha256 {actual.Sha256} does not match the manifest's {expected.Sha256}");
            }
        }

        problems.AddRange(files.Keys.Where(name => !listed.Contains(name)).Order(StringComparer.Ordinal).Select(name => $"{name}: not listed in the manifest"));
        if (!manifest.Files.Any(f => f.Path == BackupManifest.DumpFile))
        {
            problems.Add($"{BackupManifest.DumpFile}: the manifest lists no database dump");
        }

        if (problems.Count > 0)
        {
            throw new ArchiveRejectedException("The archive failed verification:\n  - " + string.Join("\n  - ", problems));
        }

        return manifest;
    }

    [GeneratedRegex("^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")]
    private static partial Regex SafeName();

    /// <summary>Counts the bytes read through it (the decompressed length).</summary>
    private sealed class CountingStream(Stream inner) : Stream
    {
        public long BytesRead { get; private set; }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => BytesRead;
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count)
        {
            var read = inner.Read(buffer, offset, count);
            BytesRead += read;
            return read;
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var read = await inner.ReadAsync(buffer, cancellationToken);
            BytesRead += read;
            return read;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
