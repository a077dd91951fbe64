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
    private byte[] chunk = new byte[ChunkSize];
    private int filled;
    private readonly Crc32 crc = new();
    private long length;
    private long accepted;
    private bool headerWritten;
    private bool finished;
    private bool broken;

    public ParallelGzipStream(Stream output, CompressionLevel level = CompressionLevel.Fastest, int? threads = null)
    {
        this.output = output;
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
            await DispatchAsync(last: true, cancellationToken);
            while (inFlight.Count > 0)
            {
                await WriteOldestAsync(cancellationToken);
            }

            var trailer = new byte[8];
            BinaryPrimitives.WriteUInt32LittleEndian(trailer, crc.GetCurrentHashAsUInt32());
            BinaryPrimitives.WriteUInt32LittleEndian(trailer.AsSpan(4), unchecked((uint)length));
            await Guard(output.WriteAsync(trailer, cancellationToken));
        }

        finished = true;
    }

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
            headerWritten = true;
        }

        var data = chunk;
        var count = filled;
        crc.Append(data.AsSpan(0, count));
        inFlight.Enqueue(Task.Run(() => Compress(data, count, last), cancellationToken));
        chunk = new byte[ChunkSize];
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
        await Guard(output.WriteAsync(done.Deflated, cancellationToken));
        length += done.Length;
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
        var compressed = new MemoryStream(count / 2 + 64);
        ReadOnlyMemory<byte> deflated;
        using (var deflate = new DeflateStream(compressed, level, leaveOpen: true))
        {
            deflate.Write(data, 0, count);
            // A sync flush ends the chunk on a byte boundary with an empty stored block; what
            // disposing adds after it (the final block) belongs only at the very end of the stream.
            deflate.Flush();
            deflated = compressed.GetBuffer().AsMemory(0, (int)compressed.Length);
        }

        if (last)
        {
            // An empty DeflateStream writes nothing at all; the stream still needs its final block
            // (an empty fixed-Huffman block, the two bytes zlib itself writes).
            deflated = compressed.Length > 0 ? compressed.GetBuffer().AsMemory(0, (int)compressed.Length) : EmptyFinalBlock;
        }

        return new Compressed(deflated, count);
    }

    private sealed record Compressed(ReadOnlyMemory<byte> Deflated, long Length);
}
