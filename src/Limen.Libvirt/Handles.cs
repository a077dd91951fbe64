using System.Runtime.InteropServices;

namespace Limen.Libvirt;

// One SafeHandle per libvirt object type. libvirt objects are reference counted and each one keeps
// its connection alive, so handles may be released in any order. The parameterless constructors are
// used by the LibraryImport marshaller for functions returning the object; the nint constructors
// adopt pointers from list functions (virConnectListAllDomains, virDomainListAllSnapshots).

internal sealed class ConnectHandle : SafeHandle
{
    public ConnectHandle() : base(0, ownsHandle: true) { }
    public override bool IsInvalid => handle == 0;
    protected override bool ReleaseHandle() => NativeMethods.virConnectClose(handle) >= 0;
}

internal sealed class DomainHandle : SafeHandle
{
    public DomainHandle() : base(0, ownsHandle: true) { }
    public DomainHandle(nint pointer) : this() => SetHandle(pointer);
    public override bool IsInvalid => handle == 0;
    protected override bool ReleaseHandle() => NativeMethods.virDomainFree(handle) == 0;
}

internal sealed class SnapshotHandle : SafeHandle
{
    public SnapshotHandle() : base(0, ownsHandle: true) { }
    public SnapshotHandle(nint pointer) : this() => SetHandle(pointer);
    public override bool IsInvalid => handle == 0;
    protected override bool ReleaseHandle() => NativeMethods.virDomainSnapshotFree(handle) == 0;
}
