using System.Globalization;

namespace Limen.Libvirt;

/// <summary>virDomainStatsTypes: which groups of statistics to collect.</summary>
[Flags]
public enum DomainStatsTypes : uint
{
    /// <summary>Every group the driver supports.</summary>
    All = 0,
    State = 1 << 0,
    CpuTotal = 1 << 1,
    Balloon = 1 << 2,
    Vcpu = 1 << 3,
    Interface = 1 << 4,
    Block = 1 << 5,
    Perf = 1 << 6,
    IoThread = 1 << 7,
    Memory = 1 << 8,
    DirtyRate = 1 << 9,
    Vm = 1 << 10,
    /// <summary>What the typed properties of <see cref="DomainStats"/> read.</summary>
    Default = State | CpuTotal | Balloon | Interface | Block,
}

/// <summary>Memory of a domain in KiB (balloon.*). Null members are ones the guest's balloon driver does not report.</summary>
public sealed record MemoryStats(ulong? ActualKiB, ulong? MaximumKiB, ulong? RssKiB, ulong? UnusedKiB, ulong? AvailableKiB, ulong? UsableKiB);

/// <summary>Counters of one disk (block.N.*); Name is the target, e.g. vda.</summary>
public sealed record BlockStats(string Name, string? Path, ulong ReadBytes, ulong WriteBytes, ulong ReadRequests, ulong WriteRequests, ulong? CapacityBytes, ulong? AllocationBytes);

/// <summary>Counters of one network interface (net.N.*); Name is the host-side device, e.g. vnet0.</summary>
public sealed record InterfaceStats(string Name, ulong RxBytes, ulong TxBytes, ulong RxPackets, ulong TxPackets);

/// <summary>
/// One domain's record from virConnectGetAllDomainStats / virDomainListGetStats: every typed
/// parameter libvirt returned in <see cref="Values"/> (int, uint, long, ulong, double, bool or string),
/// plus typed views of the common ones.
/// </summary>
public sealed class DomainStats
{
    private DomainStats(Guid uuid, string name, Dictionary<string, object> values)
    {
        Uuid = uuid;
        Name = name;
        Values = values;
        State = values.TryGetValue("state.state", out var s) ? (DomainState)Convert.ToInt32(s, CultureInfo.InvariantCulture) : null;
        CpuTimeNs = Number("cpu.time");
        Memory = new MemoryStats(Number("balloon.current"), Number("balloon.maximum"), Number("balloon.rss"),
            Number("balloon.unused"), Number("balloon.available"), Number("balloon.usable"));
        Blocks = Enumerable.Range(0, (int)(Number("block.count") ?? 0))
            .Select(i => new BlockStats(Text($"block.{i}.name") ?? "", Text($"block.{i}.path"),
                Number($"block.{i}.rd.bytes") ?? 0, Number($"block.{i}.wr.bytes") ?? 0,
                Number($"block.{i}.rd.reqs") ?? 0, Number($"block.{i}.wr.reqs") ?? 0,
                Number($"block.{i}.capacity"), Number($"block.{i}.allocation")))
            .ToArray();
        Interfaces = Enumerable.Range(0, (int)(Number("net.count") ?? 0))
            .Select(i => new InterfaceStats(Text($"net.{i}.name") ?? "",
                Number($"net.{i}.rx.bytes") ?? 0, Number($"net.{i}.tx.bytes") ?? 0,
                Number($"net.{i}.rx.pkts") ?? 0, Number($"net.{i}.tx.pkts") ?? 0))
            .ToArray();
    }

    public Guid Uuid { get; }

    public string Name { get; }

    public IReadOnlyDictionary<string, object> Values { get; }

    public DomainState? State { get; }

    /// <summary>Total CPU time consumed by the domain (cpu.time), in ns.</summary>
    public ulong? CpuTimeNs { get; }

    public MemoryStats Memory { get; }

    public IReadOnlyList<BlockStats> Blocks { get; }

    public IReadOnlyList<InterfaceStats> Interfaces { get; }

    private ulong? Number(string key) => TypedParameters.Number(Values, key);

    private string? Text(string key) => Values.TryGetValue(key, out var v) ? v as string : null;

    // Copies a NULL-terminated virDomainStatsRecordPtr array into managed objects and frees it
    // (virDomainStatsRecordListFree also releases the borrowed virDomainPtr of each record).
    internal static unsafe DomainStats[] FromRecords(nint* records, int count)
    {
        try
        {
            var result = new DomainStats[count];
            byte* uuid = stackalloc byte[16];
            for (var i = 0; i < count; i++)
            {
                var record = (VirDomainStatsRecord*)records[i];
                Native.Check(NativeMethods.virDomainGetUUID(record->Domain, uuid));
                var name = Native.CopyString(NativeMethods.virDomainGetName(record->Domain));
                var values = TypedParameters.Read(record->Params, record->NParams);
                result[i] = new DomainStats(Native.ToGuid(uuid), name, values);
            }
            return result;
        }
        finally
        {
            NativeMethods.virDomainStatsRecordListFree(records);
        }
    }
}
