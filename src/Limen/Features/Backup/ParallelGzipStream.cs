using System.Buffers.Binary;
using System.IO.Compression;

namespace Limen.Features.Backup;

/// <summary>
/// A write-only stream that writes one ordinary gzip member (RFC 1952) to <c>output</c>, its
/// deflate data compressed in independent chunks on several threads, as pigz does: every chunk but
/// the last ends with a sync flush (byte-aligned, no final-block bit), so the chunks concatenate
/// into one valid deflate stream, and the CRC-32 of the chunks is combined for the trailer. Every
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
    private uint crc;
    private long length;
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
        get => length + filled;
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
            BinaryPrimitives.WriteUInt32LittleEndian(trailer, crc);
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
        crc = Crc32.Combine(crc, done.Crc, done.Length);
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

        return new Compressed(deflated, Crc32.Compute(data.AsSpan(0, count)), count);
    }

    private sealed record Compressed(ReadOnlyMemory<byte> Deflated, uint Crc, long Length);
}

/// <summary>CRC-32 as gzip uses it (IEEE 802.3, reflected), slice-by-8, with zlib's combine of two CRCs.</summary>
public static class Crc32
{
    private const uint Polynomial = 0xEDB88320;
    private static readonly uint[] Table = BuildTable();

    public static uint Compute(ReadOnlySpan<byte> data, uint crc = 0)
    {
        var table = Table;
        crc = ~crc;
        while (data.Length >= 8)
        {
            var one = BinaryPrimitives.ReadUInt32LittleEndian(data) ^ crc;
            var two = BinaryPrimitives.ReadUInt32LittleEndian(data[4..]);
            crc = table[(7 * 256) + (one & 0xFF)] ^ table[(6 * 256) + ((one >> 8) & 0xFF)] ^ table[(5 * 256) + ((one >> 16) & 0xFF)] ^ table[(4 * 256) + (one >> 24)]
                ^ table[(3 * 256) + (two & 0xFF)] ^ table[(2 * 256) + ((two >> 8) & 0xFF)] ^ table[256 + ((two >> 16) & 0xFF)] ^ table[two >> 24];
            data = data[8..];
        }

        foreach (var b in data)
        {
            crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8);
        }

        return ~crc;
    }

    /// <summary>The CRC of A followed by B from crc(A), crc(B) and B's length (zlib's crc32_combine).</summary>
    public static uint Combine(uint crc1, uint crc2, long length2)
    {
        if (length2 <= 0)
        {
            return crc1;
        }

        var even = new uint[32];
        var odd = new uint[32];
        // The operator for one zero bit, then squared to two and four zero bits.
        odd[0] = Polynomial;
        uint row = 1;
        for (var n = 1; n < 32; n++)
        {
            odd[n] = row;
            row <<= 1;
        }

        Square(even, odd);
        Square(odd, even);
        // Apply length2 zero bytes to crc1, one bit of the length at a time.
        do
        {
            Square(even, odd);
            if ((length2 & 1) != 0)
            {
                crc1 = Times(even, crc1);
            }

            length2 >>= 1;
            if (length2 == 0)
            {
                break;
            }

            Square(odd, even);
            if ((length2 & 1) != 0)
            {
                crc1 = Times(odd, crc1);
            }

            length2 >>= 1;
        }
        while (length2 != 0);

        return crc1 ^ crc2;
    }

    private static uint Times(uint[] matrix, uint vector)
    {
        uint sum = 0;
        for (var i = 0; vector != 0; i++, vector >>= 1)
        {
            if ((vector & 1) != 0)
            {
                sum ^= matrix[i];
            }
        }

        return sum;
    }

    private static void Square(uint[] square, uint[] matrix)
    {
        for (var n = 0; n < 32; n++)
        {
            square[n] = Times(matrix, matrix[n]);
        }
    }

    private static uint[] BuildTable()
    {
        var table = new uint[8 * 256];
        for (uint i = 0; i < 256; i++)
        {
            var c = i;
            for (var k = 0; k < 8; k++)
            {
                c = (c & 1) != 0 ? Polynomial ^ (c >> 1) : c >> 1;
            }

            table[i] = c;
        }

        for (var i = 0; i < 256; i++)
        {
            for (var slice = 1; slice < 8; slice++)
            {
                var previous = table[((slice - 1) * 256) + i];
                table[(slice * 256) + i] = (previous >> 8) ^ table[previous & 0xFF];
            }
        }

        return table;
    }
}
