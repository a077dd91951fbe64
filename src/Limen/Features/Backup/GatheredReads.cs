using System.Buffers;
using System.Runtime.CompilerServices;
using System.Threading.Channels;

namespace Limen.Features.Backup;

/// <summary>
/// A child's output pipe read on a thread of its own with plain blocking reads, handed on in pieces
/// of at least <c>gather</c> bytes. pg_dump writes its stdout 4 KiB at a time: read asynchronously,
/// every 4 KiB cost an epoll wake-up and a thread-pool hop, and every piece downstream a hash call
/// and a hand-over to the CSV thread — about a tenth of a small backup's CPU on two cores. The
/// reading thread goes on while the previous piece is processed, so the writer never waits on a
/// full pipe for that.
/// </summary>
public static class GatheredReads
{
    /// <summary>
    /// The pieces in order, each valid until the next is asked for. If the caller stops early, the
    /// reading thread ends on its own at the pipe's end (the caller kills the writer) and is not awaited.
    /// </summary>
    public static async IAsyncEnumerable<ReadOnlyMemory<byte>> ReadAsync(Stream source, int gather, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        // One piece being processed, one waiting, one being filled.
        var pieces = Channel.CreateBounded<(byte[] Buffer, int Count)>(new BoundedChannelOptions(1) { SingleReader = true, SingleWriter = true });
        var reading = Task.Factory.StartNew(() => ReadAll(source, gather, pieces.Writer), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        try
        {
            await foreach (var (buffer, count) in pieces.Reader.ReadAllAsync(cancellationToken))
            {
                try
                {
                    yield return buffer.AsMemory(0, count);
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                }
            }

            await reading;
        }
        finally
        {
            // Stopped early: the reading thread's next hand-over fails and it gives its piece back.
            pieces.Writer.TryComplete();
        }
    }

    private static void ReadAll(Stream source, int gather, ChannelWriter<(byte[] Buffer, int Count)> pieces)
    {
        try
        {
            while (true)
            {
                var buffer = ArrayPool<byte>.Shared.Rent(gather);
                var count = source.ReadAtLeast(buffer.AsSpan(0, gather), gather, throwOnEndOfStream: false);
                if (count == 0 || !Hand(pieces, buffer, count))
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                    break;
                }
            }

            pieces.TryComplete();
        }
        catch (Exception e)
        {
            pieces.TryComplete(e);
        }
    }

    /// <summary>Waits for room (the consumer is one piece behind); false once the consumer has stopped.</summary>
    private static bool Hand(ChannelWriter<(byte[] Buffer, int Count)> pieces, byte[] buffer, int count)
    {
        while (!pieces.TryWrite((buffer, count)))
        {
            if (!pieces.WaitToWriteAsync().AsTask().GetAwaiter().GetResult())
            {
                return false;
            }
        }

        return true;
    }
}
