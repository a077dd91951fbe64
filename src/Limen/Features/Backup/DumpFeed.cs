namespace Limen.Features.Backup;

/// <summary>
/// The dump as the archive's verification writes it out, fed to pg_restore while the rest of the
/// archive is still being checked, so checking and loading overlap. The last bytes are held back
/// until the whole archive is proven good (<see cref="Verified"/>): pg_restore cannot finish, let
/// alone commit, without them. A rejected archive (<see cref="Rejected"/>) ends the feed with an
/// exception; the caller kills pg_restore and the server rolls its transaction back, so the target
/// is never changed by an archive that failed verification.
/// </summary>
public sealed class DumpFeed
{
    /// <summary>More than the end-of-block marker a custom-format archive ends with (a sign byte and up to 8 bytes of zero).</summary>
    private const int HoldBack = 16;

    private readonly SemaphoreSlim changed = new(0, 1);
    private readonly TaskCompletionSource<bool> verdict = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private string? path;
    private long written;
    private bool complete;

    /// <summary>Verification began writing the dump to <paramref name="file"/>.</summary>
    internal void Started(string file)
    {
        path = file;
        Signal();
    }

    /// <summary>The first <paramref name="total"/> bytes are in the file.</summary>
    internal void Wrote(long total)
    {
        Volatile.Write(ref written, total);
        Signal();
    }

    internal void Completed()
    {
        Volatile.Write(ref complete, true);
        Signal();
    }

    /// <summary>Every file of the archive matched the manifest: the held-back bytes may go.</summary>
    public void Verified() => verdict.TrySetResult(true);

    public void Rejected() => verdict.TrySetResult(false);

    /// <summary>Writes the dump to <paramref name="target"/> as it grows; returns once all of it went, which needs <see cref="Verified"/>.</summary>
    public async Task CopyToAsync(Stream target, CancellationToken cancellationToken)
    {
        FileStream? file = null;
        try
        {
            var buffer = new byte[1 << 20];
            long sent = 0;
            while (true)
            {
                if (verdict.Task.IsCompleted && !verdict.Task.Result)
                {
                    throw new ArchiveRejectedException("The archive failed verification while its dump was being loaded; the load was abandoned.");
                }

                var available = Volatile.Read(ref written);
                var done = Volatile.Read(ref complete);
                var limit = done && verdict.Task.IsCompleted ? available : available - HoldBack;
                if (path is not null && sent < limit)
                {
                    file ??= new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1);
                    file.Position = sent;
                    var read = await file.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, limit - sent)), cancellationToken);
                    await target.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                    sent += read;
                    continue;
                }

                if (done && verdict.Task.IsCompleted && sent == available)
                {
                    return;
                }

                await Task.WhenAny(changed.WaitAsync(cancellationToken), verdict.Task);
                cancellationToken.ThrowIfCancellationRequested();
            }
        }
        finally
        {
            if (file is not null)
            {
                await file.DisposeAsync();
            }
        }
    }

    private void Signal()
    {
        try
        {
            changed.Release();
        }
        catch (SemaphoreFullException)
        {
            // Already signalled; the feeder reads the newest state when it wakes.
        }
    }
}
