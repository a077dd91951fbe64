using System.Collections.Concurrent;
using Limen.Data;
using Limen.Features.Hosts;
using Limen.Libvirt;

namespace Limen.Features.Vms;

/// <summary>
/// Live statistics of a VM. CPU usage is the CPU time a domain used between two samples over the
/// wall time between them and its vCPUs; the previous sample is remembered per VM, and when there
/// is none recent enough a second sample is taken one second later.
/// </summary>
public sealed class VmStatsSampler(HostRegistry hosts, TimeProvider clock)
{
    private static readonly TimeSpan MinimumWindow = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan MaximumWindow = TimeSpan.FromMinutes(1);

    private readonly ConcurrentDictionary<Guid, (DateTimeOffset At, ulong CpuNs)> previous = new();

    public async Task<VmStatsResponse?> SampleAsync(Vm vm, CancellationToken cancellationToken)
    {
        var first = await ReadAsync(vm, cancellationToken);
        if (first is null)
        {
            return null;
        }

        var now = clock.GetUtcNow();
        if (!previous.TryGetValue(vm.Id, out var earlier) || now - earlier.At < MinimumWindow || now - earlier.At > MaximumWindow)
        {
            earlier = (now, first.CpuTimeNs ?? 0);
            await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
            first = await ReadAsync(vm, cancellationToken);
            if (first is null)
            {
                return null;
            }

            now = clock.GetUtcNow();
        }

        var cpuNs = first.CpuTimeNs ?? 0;
        previous[vm.Id] = (now, cpuNs);
        var wallNs = (now - earlier.At).TotalNanoseconds;
        var cpuPercent = wallNs <= 0 || cpuNs < earlier.CpuNs ? 0 : (cpuNs - earlier.CpuNs) / wallNs / Math.Max(1, vm.Vcpus) * 100;
        var memory = first.Memory;
        var totalKiB = memory.ActualKiB ?? (ulong)vm.MemoryMb * 1024;
        // Inside-the-guest figures need its balloon driver; the host's resident size is the fallback.
        var usedKiB = memory is { AvailableKiB: { } available, UnusedKiB: { } unused } ? available - unused : memory.RssKiB ?? 0;
        return new VmStatsResponse(
            first.State is { } state ? VmStates.FromDomain(state) : vm.State,
            Math.Round(Math.Min(cpuPercent, 100), 2),
            vm.Vcpus,
            (long)usedKiB * 1024,
            (long)totalKiB * 1024,
            first.Blocks.Sum(b => (long)b.ReadBytes),
            first.Blocks.Sum(b => (long)b.WriteBytes),
            first.Interfaces.Sum(i => (long)i.RxBytes),
            first.Interfaces.Sum(i => (long)i.TxBytes),
            now);
    }

    private Task<DomainStats?> ReadAsync(Vm vm, CancellationToken cancellationToken) =>
        Task.Run(() => hosts.Of(vm).Hypervisor.Run(c =>
        {
            using var domain = c.LookupDomainByUuid(vm.Id);
            return domain?.GetStats();
        }), cancellationToken);
}
