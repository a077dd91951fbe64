using System.Runtime.InteropServices;

namespace Limen.Libvirt;

// Every native libvirt entry point the binding uses, and nothing else. Signatures follow
// /usr/include/libvirt/*.h. Conventions:
//  * objects are passed as SafeHandles, so a call holds a reference and a concurrent Dispose cannot
//    free the object under it;
//  * strings the caller must free (char *) come back as nint and go through Native.TakeString;
//    strings owned by libvirt (const char *) come back as nint and are only copied;
//  * C `unsigned long` is CULong (64-bit on Linux, where libvirt lives).
internal static unsafe partial class NativeMethods
{
    private const string Lib = "libvirt.so.0";

    // --- library, errors, event loop (libvirt-host.h, virterror.h, libvirt-event.h) ---
    [LibraryImport(Lib)] internal static partial int virInitialize();
    [LibraryImport(Lib)] internal static partial void virSetErrorFunc(nint userData, delegate* unmanaged<nint, nint, void> handler);
    [LibraryImport(Lib)] internal static partial int virGetLastErrorCode();
    [LibraryImport(Lib)] internal static partial int virGetLastErrorDomain();
    [LibraryImport(Lib)] internal static partial nint virGetLastErrorMessage();
    [LibraryImport(Lib)] internal static partial int virEventRegisterDefaultImpl();
    [LibraryImport(Lib)] internal static partial int virEventRunDefaultImpl();

    // --- connection (libvirt-host.h) ---
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)] internal static partial ConnectHandle virConnectOpen(string uri);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)] internal static partial ConnectHandle virConnectOpenReadOnly(string uri);
    [LibraryImport(Lib)] internal static partial int virConnectClose(nint conn);
    [LibraryImport(Lib)] internal static partial int virConnectIsAlive(ConnectHandle conn);
    [LibraryImport(Lib)] internal static partial int virConnectSetKeepAlive(ConnectHandle conn, int interval, uint count);
    [LibraryImport(Lib)] internal static partial nint virConnectGetHostname(ConnectHandle conn);
    [LibraryImport(Lib)] internal static partial int virConnectGetLibVersion(ConnectHandle conn, out CULong libVer);
    [LibraryImport(Lib)] internal static partial nint virConnectGetCapabilities(ConnectHandle conn);
    [LibraryImport(Lib)] internal static partial int virNodeGetInfo(ConnectHandle conn, out VirNodeInfo info);
    [LibraryImport(Lib)] internal static partial int virNodeGetCPUStats(ConnectHandle conn, int cpuNum, VirNodeStatsEntry* parameters, ref int nparams, uint flags);
    [LibraryImport(Lib)] internal static partial int virNodeGetMemoryStats(ConnectHandle conn, int cellNum, VirNodeStatsEntry* parameters, ref int nparams, uint flags);

    // --- domains (libvirt-domain.h) ---
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)] internal static partial DomainHandle virDomainDefineXML(ConnectHandle conn, string xml);
    [LibraryImport(Lib)] internal static partial DomainHandle virDomainLookupByUUID(ConnectHandle conn, byte* uuid);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)] internal static partial DomainHandle virDomainLookupByName(ConnectHandle conn, string name);
    [LibraryImport(Lib)] internal static partial int virConnectListAllDomains(ConnectHandle conn, out nint* domains, uint flags);
    [LibraryImport(Lib)] internal static partial int virDomainFree(nint domain);
    [LibraryImport(Lib)] internal static partial int virDomainGetUUID(DomainHandle domain, byte* uuid);
    [LibraryImport(Lib)] internal static partial int virDomainGetUUID(nint domain, byte* uuid);
    [LibraryImport(Lib)] internal static partial nint virDomainGetName(DomainHandle domain);
    [LibraryImport(Lib)] internal static partial nint virDomainGetName(nint domain);
    [LibraryImport(Lib)] internal static partial int virDomainCreate(DomainHandle domain);
    [LibraryImport(Lib)] internal static partial int virDomainShutdownFlags(DomainHandle domain, uint flags);
    [LibraryImport(Lib)] internal static partial int virDomainDestroyFlags(DomainHandle domain, uint flags);
    [LibraryImport(Lib)] internal static partial int virDomainReboot(DomainHandle domain, uint flags);
    [LibraryImport(Lib)] internal static partial int virDomainSuspend(DomainHandle domain);
    [LibraryImport(Lib)] internal static partial int virDomainResume(DomainHandle domain);
    [LibraryImport(Lib)] internal static partial int virDomainUndefineFlags(DomainHandle domain, uint flags);
    [LibraryImport(Lib)] internal static partial int virDomainGetState(DomainHandle domain, out int state, out int reason, uint flags);
    [LibraryImport(Lib)] internal static partial int virDomainGetInfo(DomainHandle domain, out VirDomainInfo info);
    [LibraryImport(Lib)] internal static partial nint virDomainGetXMLDesc(DomainHandle domain, uint flags);
    [LibraryImport(Lib)] internal static partial int virDomainIsActive(DomainHandle domain);
    [LibraryImport(Lib)] internal static partial int virConnectGetAllDomainStats(ConnectHandle conn, uint stats, out nint* records, uint flags);
    [LibraryImport(Lib)] internal static partial int virDomainListGetStats(nint* domains, uint stats, out nint* records, uint flags);
    [LibraryImport(Lib)] internal static partial void virDomainStatsRecordListFree(nint* records);

    // --- migration and jobs (libvirt-domain.h) ---
    [LibraryImport(Lib)] internal static partial DomainHandle virDomainMigrate3(DomainHandle domain, ConnectHandle dconn, VirTypedParameter* parameters, uint nparams, uint flags);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)] internal static partial int virDomainMigrateToURI3(DomainHandle domain, string dconnuri, VirTypedParameter* parameters, uint nparams, uint flags);
    [LibraryImport(Lib)] internal static partial int virDomainGetJobStats(DomainHandle domain, out int type, out nint parameters, out int nparams, uint flags);
    [LibraryImport(Lib)] internal static partial int virDomainAbortJob(DomainHandle domain);

    // --- typed parameters (libvirt-common.h): the Add functions realloc *params with libvirt's allocator ---
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)] internal static partial int virTypedParamsAddString(ref nint parameters, ref int nparams, ref int maxparams, string name, string value);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)] internal static partial int virTypedParamsAddULLong(ref nint parameters, ref int nparams, ref int maxparams, string name, ulong value);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)] internal static partial int virTypedParamsAddStringList(ref nint parameters, ref int nparams, ref int maxparams, string name, nint* values);
    [LibraryImport(Lib)] internal static partial void virTypedParamsFree(nint parameters, int nparams);

    // --- domain lifecycle events (libvirt-domain.h) ---
    [LibraryImport(Lib)]
    internal static partial int virConnectDomainEventRegisterAny(
        ConnectHandle conn, nint domain, int eventId,
        delegate* unmanaged<nint, nint, int, int, nint, int> callback, nint opaque, delegate* unmanaged<nint, void> freeOpaque);
    [LibraryImport(Lib)] internal static partial int virConnectDomainEventDeregisterAny(ConnectHandle conn, int callbackId);

    // --- snapshots (libvirt-domain-snapshot.h) ---
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)] internal static partial SnapshotHandle virDomainSnapshotCreateXML(DomainHandle domain, string xml, uint flags);
    [LibraryImport(Lib)] internal static partial int virDomainListAllSnapshots(DomainHandle domain, out nint* snapshots, uint flags);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)] internal static partial SnapshotHandle virDomainSnapshotLookupByName(DomainHandle domain, string name, uint flags);
    [LibraryImport(Lib)] internal static partial nint virDomainSnapshotGetName(SnapshotHandle snapshot);
    [LibraryImport(Lib)] internal static partial nint virDomainSnapshotGetXMLDesc(SnapshotHandle snapshot, uint flags);
    [LibraryImport(Lib)] internal static partial int virDomainRevertToSnapshot(SnapshotHandle snapshot, uint flags);
    [LibraryImport(Lib)] internal static partial int virDomainSnapshotDelete(SnapshotHandle snapshot, uint flags);
    [LibraryImport(Lib)] internal static partial int virDomainSnapshotFree(nint snapshot);
}

[StructLayout(LayoutKind.Sequential)]
internal unsafe struct VirNodeInfo
{
    public fixed byte Model[32];
    public CULong Memory;          // KiB
    public uint Cpus;
    public uint Mhz;
    public uint Nodes;
    public uint Sockets;           // per NUMA node
    public uint Cores;             // per socket
    public uint Threads;           // per core
}

[StructLayout(LayoutKind.Sequential)]
internal struct VirDomainInfo
{
    public byte State;
    public CULong MaxMem;          // KiB
    public CULong Memory;          // KiB
    public ushort NrVirtCpu;
    public ulong CpuTime;          // ns
}

// virNodeCPUStats and virNodeMemoryStats share this layout: char field[80]; unsigned long long value.
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct VirNodeStatsEntry
{
    public fixed byte Field[80];
    public ulong Value;
}

// virTypedParameter: char field[80]; int type; union { int, uint, long long, ull, double, char, char* }.
// The union is 8-byte aligned, hence offset 88 and size 96.
[StructLayout(LayoutKind.Explicit, Size = 96)]
internal unsafe struct VirTypedParameter
{
    [FieldOffset(0)] public fixed byte Field[80];
    [FieldOffset(80)] public int Type;
    [FieldOffset(88)] public int I;
    [FieldOffset(88)] public uint UI;
    [FieldOffset(88)] public long L;
    [FieldOffset(88)] public ulong UL;
    [FieldOffset(88)] public double D;
    [FieldOffset(88)] public byte B;
    [FieldOffset(88)] public nint S;
}

// virDomainStatsRecord: virDomainPtr dom; virTypedParameterPtr params; int nparams.
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct VirDomainStatsRecord
{
    public nint Domain;
    public VirTypedParameter* Params;
    public int NParams;
}
