using System.Buffers.Binary;
using System.Formats.Tar;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Limen.Features.Backup;

/// <summary>
/// An archive being written, in three parts: files streamed from a producer whose length is
/// known only at their end (the dump, straight from pg_dump's output while it runs), then staged
/// files, then manifest.json and its checksum. It lives under a hidden temporary name in the
/// target folder until <see cref="CompleteAsync"/> fsyncs and renames it; disposing an incomplete
/// one deletes it, so a failure or cancellation leaves no archive behind. Every file is hashed as
/// it is written (no second pass over the data).
/// </summary>
public sealed class BackupArchiveWriter : IAsyncDisposable
{
    private const int TarBlock = 512;
    /// <summary>pg_dump's 4 KiB writes are handed on in pieces of at least this much (see <see cref="GatheredReads"/>).</summary>
    private const int GatherBytes = 256 << 10;
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    private readonly string finalPath;
    private readonly string partialPath;
    private readonly DateTimeOffset createdAt;
    private readonly FileStream file;
    private readonly ParallelGzipStream gzip;
    private readonly TarWriter tar;
    private readonly List<ManifestFile> files = [];
    private bool completed;

    private BackupArchiveWriter(string finalPath, DateTimeOffset createdAt)
    {
        if (File.Exists(finalPath))
        {
            throw new BackupFailedException($"{finalPath} already exists; not overwriting an archive.");
        }

        this.finalPath = finalPath;
        this.createdAt = createdAt;
        partialPath = Path.Combine(Path.GetDirectoryName(finalPath)!, "." + Path.GetFileName(finalPath) + ".partial");
        file = new FileStream(partialPath, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            UnixCreateMode = OwnerOnly,
            Options = FileOptions.Asynchronous,
        });
        // The only compression pass (the dump is written uncompressed), at level 1 and on every
        // core: one ordinary gzip stream that gzip, tar and older Limen versions read as before.
        gzip = new ParallelGzipStream(file);
        tar = new TarWriter(gzip, TarEntryFormat.Pax, leaveOpen: true);
    }

    /// <summary>Starts <paramref name="finalPath"/>'s hidden temporary file; its entries carry <paramref name="createdAt"/> as their time.</summary>
    public static BackupArchiveWriter Create(string finalPath, DateTimeOffset createdAt) => new(finalPath, createdAt);

    /// <summary>
    /// Copies <paramref name="source"/> to its end into the entry <paramref name="name"/> while it is
    /// being produced. The tar header, which holds the length, is reserved in front and filled in at
    /// the end. Returns the length.
    /// </summary>
    /// <param name="observe">Sees each piece as it goes in, before the next is read (its memory is reused then).</param>
    public async Task<long> WriteStreamAsync(string name, Stream source, Func<ReadOnlyMemory<byte>, ValueTask> observe, CancellationToken cancellationToken)
    {
        var header = await gzip.ReserveAsync(TarBlock, cancellationToken);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long size = 0;
        await foreach (var piece in GatheredReads.ReadAsync(source, GatherBytes, cancellationToken))
        {
            hash.AppendData(piece.Span);
            await gzip.WriteAsync(piece, cancellationToken);
            await observe(piece);
            size += piece.Length;
        }

        await gzip.WriteAsync(new byte[(TarBlock - (int)(size % TarBlock)) % TarBlock], cancellationToken);
        header.Fill(UstarHeader(name, size, createdAt));
        files.Add(new ManifestFile(name, size, Convert.ToHexStringLower(hash.GetHashAndReset())));
        return size;
    }

    /// <summary>
    /// A file for the archive written beside the archive's own stream (a CSV while the dump is being
    /// streamed): compressed as it is written, on every core, into a hidden spool in the archive's
    /// folder, and spliced in by <see cref="AppendSpooledAsync"/> without compressing it again.
    /// </summary>
    public SpoolStream CreateSpoolStream(string name) =>
        new(name, new FileStream(Path.Combine(Path.GetDirectoryName(finalPath)!, $".limen-spool-{Guid.NewGuid():N}"), new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.ReadWrite,
            UnixCreateMode = OwnerOnly,
            Options = FileOptions.DeleteOnClose,
        }));

    /// <summary>The finished spool as one entry: its header, its deflate bytes as they are, its padding.</summary>
    public async Task AppendSpooledAsync(SpoolStream entry, CancellationToken cancellationToken)
    {
        var (size, sha256, crc) = await entry.FinishAsync(cancellationToken);
        await gzip.WriteAsync(UstarHeader(entry.Name, size, createdAt), cancellationToken);
        await gzip.AppendDeflatedAsync(entry.Spool, crc, size, cancellationToken);
        await gzip.WriteAsync(new byte[(TarBlock - (int)(size % TarBlock)) % TarBlock], cancellationToken);
        files.Add(new ManifestFile(entry.Name, size, sha256));
    }

    /// <summary>Every file under <paramref name="stagingDir"/>, as archive paths like "metadata/users.csv", sorted.</summary>
    public async Task WriteStagedAsync(string stagingDir, Action<double> progress, CancellationToken cancellationToken)
    {
        var staged = Directory.EnumerateFiles(stagingDir, "*", SearchOption.AllDirectories)
            .Select(path => (Path: path, Name: Path.GetRelativePath(stagingDir, path).Replace('\\', '/')))
            .OrderBy(f => f.Name, StringComparer.Ordinal)
            .ToList();
        var total = Math.Max(1, staged.Sum(f => new FileInfo(f.Path).Length));
        long done = 0;
        foreach (var (path, name) in staged)
        {
            await using var data = new HashingReadStream(File.OpenRead(path));
            await tar.WriteEntryAsync(Entry(name, data, createdAt), cancellationToken);
            files.Add(new ManifestFile(name, data.Length, data.Sha256()));
            done += data.Length;
            progress((double)done / total);
        }
    }

    /// <summary>
    /// Writes the manifest that <paramref name="describe"/> makes from the files' sizes and hashes,
    /// and its checksum, last; ends the streams; fsyncs; renames into place.
    /// </summary>
    public async Task<(BackupManifest Manifest, long Size)> CompleteAsync(Func<List<ManifestFile>, BackupManifest> describe, CancellationToken cancellationToken)
    {
        var manifest = describe([.. files.OrderBy(f => f.Path, StringComparer.Ordinal)]);
        var manifestBytes = manifest.Serialize();
        var checksum = Encoding.ASCII.GetBytes($"{Convert.ToHexStringLower(SHA256.HashData(manifestBytes))}  {BackupManifest.FileName}\n");
        await tar.WriteEntryAsync(Entry(BackupManifest.FileName, new MemoryStream(manifestBytes), manifest.CreatedAt), cancellationToken);
        await tar.WriteEntryAsync(Entry(BackupManifest.ChecksumFileName, new MemoryStream(checksum), manifest.CreatedAt), cancellationToken);
        await tar.DisposeAsync();
        await gzip.FinishAsync(cancellationToken);
        await file.FlushAsync(cancellationToken);
        // On disk before the rename makes it visible: a crash never leaves a complete-looking, empty archive.
        file.Flush(flushToDisk: true);
        await file.DisposeAsync();
        File.Move(partialPath, finalPath, overwrite: false);
        completed = true;
        return (manifest, new FileInfo(finalPath).Length);
    }

    public async ValueTask DisposeAsync()
    {
        if (!completed)
        {
            gzip.Abandon();
            await file.DisposeAsync();
            File.Delete(partialPath);
        }
    }

    private static PaxTarEntry Entry(string name, Stream data, DateTimeOffset time) => new(TarEntryType.RegularFile, name)
    {
        DataStream = data,
        Mode = OwnerOnly,
        ModificationTime = time,
    };

    /// <summary>
    /// A POSIX ustar header for a regular file (mode 0600, owner 0). Sizes beyond the 11 octal digits
    /// (8 GiB) take GNU's base-256 form, which GNU tar, bsdtar and .NET read.
    /// </summary>
    public static byte[] UstarHeader(string name, long size, DateTimeOffset modified)
    {
        var header = new byte[TarBlock];
        var nameBytes = Encoding.ASCII.GetBytes(name);
        if (nameBytes.Length > 100)
        {
            throw new ArgumentException($"'{name}' is longer than a ustar name field.", nameof(name));
        }

        nameBytes.CopyTo(header, 0);
        Octal(header.AsSpan(100, 8), (long)OwnerOnly);
        Octal(header.AsSpan(108, 8), 0);
        Octal(header.AsSpan(116, 8), 0);
        if (size < 1L << 33)
        {
            Octal(header.AsSpan(124, 12), size);
        }
        else
        {
            header[124] = 0x80;
            BinaryPrimitives.WriteInt64BigEndian(header.AsSpan(128, 8), size);
        }

        Octal(header.AsSpan(136, 12), modified.ToUnixTimeSeconds());
        header[156] = (byte)'0';
        "ustar\0"u8.CopyTo(header.AsSpan(257));
        "00"u8.CopyTo(header.AsSpan(263));
        // The checksum is the byte sum with its own field counted as spaces.
        header.AsSpan(148, 8).Fill((byte)' ');
        var sum = header.Sum(b => (long)b);
        Encoding.ASCII.GetBytes(Convert.ToString(sum, 8).PadLeft(6, '0') + "\0 ").CopyTo(header, 148);
        return header;
    }

    /// <summary>Zero-padded octal digits and a NUL, filling the field.</summary>
    private static void Octal(Span<byte> field, long value) =>
        Encoding.ASCII.GetBytes(Convert.ToString(value, 8).PadLeft(field.Length - 1, '0') + "\0").CopyTo(field);

    /// <summary>Write-only: hashed and compressed on the way into its spool file (deleted when disposed).</summary>
    public sealed class SpoolStream : Stream
    {
        private readonly IncrementalHash hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private readonly ParallelGzipStream deflate;

        internal SpoolStream(string name, FileStream spool)
        {
            Name = name;
            Spool = spool;
            deflate = new ParallelGzipStream(spool, raw: true);
        }

        public string Name { get; }

        internal FileStream Spool { get; }

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            hash.AppendData(buffer);
            deflate.Write(buffer);
        }

        public override void Flush()
        {
        }

        internal async Task<(long Size, string Sha256, uint Crc)> FinishAsync(CancellationToken cancellationToken)
        {
            await deflate.FinishAsync(cancellationToken);
            Spool.Position = 0;
            return (deflate.UncompressedLength, Convert.ToHexStringLower(hash.GetHashAndReset()), deflate.Crc);
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                deflate.Abandon();
                hash.Dispose();
                Spool.Dispose();
            }

            base.Dispose(disposing);
        }
    }

    /// <summary>
    /// A file read through once, hashed on the way (sha256 of what was read). Seekable in name only:
    /// TarWriter asks for the length up front and reads from the start.
    /// </summary>
    private sealed class HashingReadStream(FileStream inner) : Stream
    {
        private readonly IncrementalHash hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

        public override bool CanRead => true;
        public override bool CanSeek => true;
        public override bool CanWrite => false;
        public override long Length => inner.Length;

        public override long Position
        {
            get => inner.Position;
            set
            {
                if (value != inner.Position)
                {
                    throw new NotSupportedException("A hashing stream reads straight through.");
                }
            }
        }

        public string Sha256()
        {
            if (inner.Position != inner.Length)
            {
                throw new InvalidOperationException($"{inner.Name} was not read to the end ({inner.Position} of {inner.Length} bytes).");
            }

            return Convert.ToHexStringLower(hash.GetHashAndReset());
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var read = inner.Read(buffer);
            hash.AppendData(buffer[..read]);
            return read;
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var read = await inner.ReadAsync(buffer, cancellationToken);
            hash.AppendData(buffer.Span[..read]);
            return read;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) =>
            origin == SeekOrigin.Current && offset == 0 ? inner.Position : throw new NotSupportedException("A hashing stream reads straight through.");

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                hash.Dispose();
                inner.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
