using System.Buffers;
using System.Buffers.Binary;
using System.IO.Compression;
using System.IO.Hashing;

namespace Limen.Features.Backup;

/// <summary>
/// A write-only stream that writes one ordinary gzip member (RFC 1952) to <c>output</c>, its
/// deflate data compressed in independent chunks on several threads, as pigz does: every chunk but
/// the last ends with a sync flush (byte-aligned, no final-block bit), so the chunks concatenate
/// into one valid deflate stream. The CRC-32 for the trailer is taken in order on the writing thread
/// (vectorized, many GB/s: it costs nothing beside deflate). Every
/// gzip reader (gzip, tar xzf, .NET's GZipStream, older Limen) reads it as a single stream; only the
/// 32 KiB back-reference window does not reach across a chunk boundary (about 0.1 % larger output).
/// <para>
/// <see cref="ReserveAsync"/> leaves room for bytes known only later (a tar header whose size field
/// waits for the end of a streamed file): they go out as one stored block, whose compressed size
/// is its length plus five, and are written in place before the trailer.
/// </para>
/// </summary>
public sealed class ParallelGzipStream : Stream
{
    /// <summary>Large enough that the lost window at chunk boundaries costs nothing measurable.</summary>
    public const int ChunkSize = 1 << 20;

    // ID1 ID2, CM=deflate, no flags, no mtime, XFL=4 (fastest), OS=3 (Unix).
    private static readonly byte[] Header = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 3];

    private static readonly byte[] EmptyFinalBlock = [0x03, 0x00];

    private readonly Stream output;
    private readonly CompressionLevel level;
    private readonly int maxInFlight;
    private readonly Queue<Task<Compressed>> inFlight = new();
    // Chunks and their compressed output are rented and given back once written: a fresh 1 MiB
    // array per chunk is a large-object allocation, zeroed, and a collection every few of them.
    private byte[]? chunk;
    private int filled;
    private Crc32 crc = new();
    private long crcLength;
    private readonly List<Segment> segments = [];
    private long written;
    private long length;
    private long accepted;
    private readonly bool raw;
    private bool headerWritten;
    private bool finished;
    private bool broken;

    /// <param name="raw">
    /// Only deflate chunks, every one ending in a sync flush: no gzip header, trailer or final block.
    /// Such a spool is spliced into another stream by <see cref="AppendDeflatedAsync"/>, with <see cref="Crc"/> and <see cref="UncompressedLength"/>.
    /// </param>
    public ParallelGzipStream(Stream output, CompressionLevel level = CompressionLevel.Fastest, int? threads = null, bool raw = false)
    {
        this.output = output;
        this.raw = raw;
        headerWritten = raw;
        this.level = level;
        // One chunk being filled, one per core compressing, one being written: memory stays a few MiB.
        maxInFlight = Math.Max(2, threads ?? Environment.ProcessorCount);
    }

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => !finished;
    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => accepted;
        set => throw new NotSupportedException();
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        while (!buffer.IsEmpty)
        {
            var take = Fill(buffer);
            buffer = buffer[take..];
            if (filled == ChunkSize)
            {
                DispatchAsync(last: false, CancellationToken.None).AsTask().GetAwaiter().GetResult();
            }
        }
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        while (!buffer.IsEmpty)
        {
            var take = Fill(buffer.Span);
            buffer = buffer[take..];
            if (filled == ChunkSize)
            {
                await DispatchAsync(last: false, cancellationToken);
            }
        }
    }

    /// <summary>Nothing to flush short of finishing: a partial chunk would cost a sync flush per call.</summary>
    public override void Flush()
    {
    }

    /// <summary>Compresses what is left, ends the deflate stream and writes the gzip trailer. Idempotent.</summary>
    public async ValueTask FinishAsync(CancellationToken cancellationToken)
    {
        if (finished)
        {
            return;
        }

        // After a failed write (disk full, cancelled) the output is abandoned, not completed.
        if (!broken)
        {
            await DispatchAsync(last: !raw, cancellationToken);
            while (inFlight.Count > 0)
            {
                await WriteOldestAsync(cancellationToken);
            }

            if (!raw)
            {
                await WriteReservationsAsync(cancellationToken);
                var trailer = new byte[8];
                BinaryPrimitives.WriteUInt32LittleEndian(trailer, CombinedCrc());
                BinaryPrimitives.WriteUInt32LittleEndian(trailer.AsSpan(4), unchecked((uint)length));
                await Guard(output.WriteAsync(trailer, cancellationToken));
            }
        }

        finished = true;
    }

    /// <summary>The CRC-32 of everything written, once finished.</summary>
    public uint Crc => finished ? CombinedCrc() : throw new InvalidOperationException("Not finished yet.");

    /// <summary>How many bytes went in, once finished.</summary>
    public long UncompressedLength => finished ? length : throw new InvalidOperationException("Not finished yet.");

    /// <summary>
    /// Splices in a finished raw spool (see the constructor): what came before ends its chunk, the
    /// spool's deflate bytes are copied as they are, and its CRC-32 is folded in at its place.
    /// </summary>
    public async ValueTask AppendDeflatedAsync(Stream deflated, uint spoolCrc, long spoolLength, CancellationToken cancellationToken)
    {
        await EndSegmentAsync(new Segment(spoolCrc, spoolLength, null), cancellationToken);
        while (inFlight.Count > 0)
        {
            await WriteOldestAsync(cancellationToken);
        }

        var spliced = deflated.Length - deflated.Position;
        await Guard(new ValueTask(deflated.CopyToAsync(output, 1 << 20, cancellationToken)));
        written += spliced;
        length += spoolLength;
        accepted += spoolLength;
    }

    /// <summary>
    /// Ends the current chunk (a sync flush leaves the stream byte-aligned, where a stored block or a
    /// spliced spool may start) and the current CRC stretch, which <paramref name="next"/> follows.
    /// </summary>
    private async ValueTask EndSegmentAsync(Segment next, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(finished, this);
        if (filled > 0 || !headerWritten)
        {
            await DispatchAsync(last: false, cancellationToken);
        }

        segments.Add(new Segment(crc.GetCurrentHashAsUInt32(), crcLength, null));
        segments.Add(next);
        crc = new Crc32();
        crcLength = 0;
    }

    /// <summary>Gives up: nothing more is written, and finishing (or disposing) adds no trailer.</summary>
    public void Abandon() => broken = true;

    public override async ValueTask DisposeAsync()
    {
        await FinishAsync(CancellationToken.None);
        await base.DisposeAsync();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            FinishAsync(CancellationToken.None).AsTask().GetAwaiter().GetResult();
        }

        base.Dispose(disposing);
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    private int Fill(ReadOnlySpan<byte> buffer)
    {
        ObjectDisposedException.ThrowIf(finished, this);
        chunk ??= ArrayPool<byte>.Shared.Rent(ChunkSize);
        var take = Math.Min(buffer.Length, ChunkSize - filled);
        buffer[..take].CopyTo(chunk.AsSpan(filled));
        filled += take;
        accepted += take;
        return take;
    }

    private async ValueTask DispatchAsync(bool last, CancellationToken cancellationToken)
    {
        if (!headerWritten)
        {
            await Guard(output.WriteAsync(Header, cancellationToken));
            written += Header.Length;
            headerWritten = true;
        }

        var data = chunk ?? ArrayPool<byte>.Shared.Rent(ChunkSize);
        var count = filled;
        crc.Append(data.AsSpan(0, count));
        crcLength += count;
        inFlight.Enqueue(Task.Run(() => Compress(data, count, last), cancellationToken));
        chunk = null;
        filled = 0;
        // Output goes out in order; waiting for the oldest bounds memory and keeps every core busy.
        while (inFlight.Count >= maxInFlight)
        {
            await WriteOldestAsync(cancellationToken);
        }
    }

    private async ValueTask WriteOldestAsync(CancellationToken cancellationToken)
    {
        var done = await Guard(inFlight.Dequeue());
        done.Reservation?.Offset = written;
        await Guard(output.WriteAsync(done.Deflated, cancellationToken));
        written += done.Deflated.Length;
        length += done.Length;
        if (done.Rented is { } rented)
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>
    /// Room for <paramref name="size"/> bytes (at most 65,535) at the current position, to be
    /// given by <see cref="Reservation.Fill"/> before <see cref="FinishAsync"/>. The output must be seekable.
    /// </summary>
    public async ValueTask<Reservation> ReserveAsync(int size, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(size, ushort.MaxValue);
        if (!output.CanSeek)
        {
            throw new NotSupportedException("Reserving room needs a seekable output.");
        }

        var reservation = new Reservation(size);
        await EndSegmentAsync(new Segment(0, size, reservation), cancellationToken);
        inFlight.Enqueue(Task.FromResult(new Compressed(new byte[StoredBlockOverhead + size], size, reservation)));
        accepted += size;
        return reservation;
    }

    private async ValueTask WriteReservationsAsync(CancellationToken cancellationToken)
    {
        var end = output.Position;
        foreach (var reservation in segments.Select(s => s.Reservation).OfType<Reservation>())
        {
            var content = reservation.Content ?? throw new InvalidOperationException($"A reserved block of {reservation.Size} bytes was never filled.");
            output.Position = reservation.Offset!.Value;
            await Guard(output.WriteAsync(StoredBlock(content), cancellationToken));
        }

        output.Position = end;
    }

    /// <summary>A non-final stored deflate block, starting byte-aligned: header bits (padded to a byte), LEN, NLEN, the bytes.</summary>
    private static byte[] StoredBlock(byte[] content)
    {
        var block = new byte[StoredBlockOverhead + content.Length];
        block[0] = 0; // BFINAL = 0, BTYPE = 00 (stored)
        BinaryPrimitives.WriteUInt16LittleEndian(block.AsSpan(1), (ushort)content.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(block.AsSpan(3), (ushort)~content.Length);
        content.CopyTo(block, StoredBlockOverhead);
        return block;
    }

    /// <summary>The CRC-32 of the whole stream: each stretch's own, folded together in order.</summary>
    private uint CombinedCrc()
    {
        var total = 0u;
        foreach (var segment in segments.Append(new Segment(crc.GetCurrentHashAsUInt32(), crcLength, null)))
        {
            var segmentCrc = segment.Reservation is { } reservation ? Crc32.HashToUInt32(reservation.Content) : segment.Crc;
            total = Crc32Combine.Combine(total, segmentCrc, segment.Length);
        }

        return total;
    }

    private async ValueTask Guard(ValueTask write)
    {
        try
        {
            await write;
        }
        catch
        {
            broken = true;
            throw;
        }
    }

    private async Task<T> Guard<T>(Task<T> work)
    {
        try
        {
            return await work;
        }
        catch
        {
            broken = true;
            throw;
        }
    }

    private Compressed Compress(byte[] data, int count, bool last)
    {
        // Room for deflate's worst case (stored blocks: a few bytes per 16 KiB) and the flushes.
        var room = ArrayPool<byte>.Shared.Rent(count + count / 64 + 1024);
        var compressed = new MemoryStream(room, 0, room.Length, writable: true, publiclyVisible: true);
        ReadOnlyMemory<byte> deflated;
        using (var deflate = new DeflateStream(compressed, level, leaveOpen: true))
        {
            deflate.Write(data, 0, count);
            ArrayPool<byte>.Shared.Return(data);
            // A sync flush ends the chunk on a byte boundary with an empty stored block; what
            // disposing adds after it (the final block) belongs only at the very end of the stream.
            deflate.Flush();
            deflated = room.AsMemory(0, (int)compressed.Position);
        }

        if (last)
        {
            // An empty DeflateStream writes nothing at all; the stream still needs its final block
            // (an empty fixed-Huffman block, the two bytes zlib itself writes).
            deflated = compressed.Position > 0 ? room.AsMemory(0, (int)compressed.Position) : EmptyFinalBlock;
        }

        return new Compressed(deflated, count, null, room);
    }

    private const int StoredBlockOverhead = 5;

    /// <param name="Rented">The pool's array that <paramref name="Deflated"/> lies in, given back once written.</param>
    private sealed record Compressed(ReadOnlyMemory<byte> Deflated, long Length, Reservation? Reservation, byte[]? Rented = null);

    private sealed record Segment(uint Crc, long Length, Reservation? Reservation);

    /// <summary>Bytes of the uncompressed stream that are given after what follows them.</summary>
    public sealed class Reservation(int size)
    {
        public int Size { get; } = size;

        internal byte[]? Content { get; private set; }

        /// <summary>Where its stored block starts in the output, once written.</summary>
        internal long? Offset { get; set; }

        public void Fill(ReadOnlySpan<byte> content)
        {
            if (content.Length != Size)
            {
                throw new ArgumentException($"{Size} bytes were reserved, {content.Length} given.", nameof(content));
            }

            Content = content.ToArray();
        }
    }
}
