namespace Limen.Libvirt;

/// <summary>virDomainState.</summary>
public enum DomainState
{
    NoState = 0,
    Running = 1,
    Blocked = 2,
    Paused = 3,
    Shutdown = 4,
    Shutoff = 5,
    Crashed = 6,
    PMSuspended = 7,
}

/// <summary>virDomainShutdownFlagValues; <see cref="Default"/> lets the hypervisor choose (ACPI for QEMU without an agent).</summary>
[Flags]
public enum DomainShutdownFlags : uint
{
    Default = 0,
    AcpiPowerButton = 1 << 0,
    GuestAgent = 1 << 1,
    Initctl = 1 << 2,
    Signal = 1 << 3,
    Paravirt = 1 << 4,
}

/// <summary>virDomainRebootFlagValues (same bits as shutdown).</summary>
[Flags]
public enum DomainRebootFlags : uint
{
    Default = 0,
    AcpiPowerButton = 1 << 0,
    GuestAgent = 1 << 1,
    Initctl = 1 << 2,
    Signal = 1 << 3,
    Paravirt = 1 << 4,
}

/// <summary>virDomainDestroyFlagsValues.</summary>
[Flags]
public enum DomainDestroyFlags : uint
{
    Default = 0,
    /// <summary>Only SIGTERM the hypervisor process, never SIGKILL.</summary>
    Graceful = 1 << 0,
}

/// <summary>virDomainUndefineFlagsValues.</summary>
[Flags]
public enum DomainUndefineFlags : uint
{
    None = 0,
    ManagedSave = 1 << 0,
    SnapshotsMetadata = 1 << 1,
    Nvram = 1 << 2,
    KeepNvram = 1 << 3,
    CheckpointsMetadata = 1 << 4,
    Tpm = 1 << 5,
    KeepTpm = 1 << 6,
}

/// <summary>virDomainXMLFlags.</summary>
[Flags]
public enum DomainXmlFlags : uint
{
    None = 0,
    Secure = 1 << 0,
    Inactive = 1 << 1,
    UpdateCpu = 1 << 2,
    Migratable = 1 << 3,
}

/// <summary>virConnectListAllDomainsFlags (filters; <see cref="All"/> lists every domain).</summary>
[Flags]
public enum ListDomainsFlags : uint
{
    All = 0,
    Active = 1 << 0,
    Inactive = 1 << 1,
    Persistent = 1 << 2,
    Transient = 1 << 3,
    Running = 1 << 4,
    Paused = 1 << 5,
    Shutoff = 1 << 6,
    Other = 1 << 7,
}

/// <summary>virDomainInfo.</summary>
public readonly record struct DomainInfo(DomainState State, ulong MaxMemoryKiB, ulong MemoryKiB, int VirtualCpus, ulong CpuTimeNs);

/// <summary>virNodeInfo. Sockets is per NUMA node, Cores per socket, Threads per core.</summary>
public sealed record NodeInfo(string Model, ulong MemoryKiB, int Cpus, int Mhz, int NumaNodes, int Sockets, int Cores, int Threads);
