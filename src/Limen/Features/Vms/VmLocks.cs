using System.Collections.Concurrent;

namespace Limen.Features.Vms;

/// <summary>
/// Serializes everything that changes one VM (actions, edits, snapshots, delete) within this
/// server; different VMs proceed in parallel. The reconciler and recovery skip VMs whose lock is held (TryAcquire).
/// </summary>
public sealed class VmLocks
{
    private readonly ConcurrentDictionary<Guid, SemaphoreSlim> locks = new();

    public async Task<IDisposable> AcquireAsync(Guid vmId, CancellationToken cancellationToken)
    {
        var semaphore = locks.GetOrAdd(vmId, _ => new SemaphoreSlim(1, 1));
        await semaphore.WaitAsync(cancellationToken);
        return new Releaser(semaphore);
    }

    /// <summary>The VM's lock if nobody holds it right now, else null: for work that must not wait behind an operation.</summary>
    public IDisposable? TryAcquire(Guid vmId)
    {
        var semaphore = locks.GetOrAdd(vmId, _ => new SemaphoreSlim(1, 1));
        return semaphore.Wait(0) ? new Releaser(semaphore) : null;
    }

    private sealed class Releaser(SemaphoreSlim semaphore) : IDisposable
    {
        private int released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref released, 1) == 0)
            {
                semaphore.Release();
            }
        }
    }
}
