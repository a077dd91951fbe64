namespace Limen.Libvirt;

/// <summary>A libvirt call failed. <see cref="Exception.Message"/> is libvirt's own message.</summary>
public sealed class LibvirtException : Exception
{
    public LibvirtException() { }

    public LibvirtException(string message) : base(message) { }

    public LibvirtException(string message, Exception innerException) : base(message, innerException) { }

    public LibvirtException(string message, LibvirtErrorCode code, int errorDomain, string function) : base(message)
    {
        Code = code;
        ErrorDomain = errorDomain;
        Function = function;
    }

    /// <summary>libvirt's virErrorNumber.</summary>
    public LibvirtErrorCode Code { get; }

    /// <summary>libvirt's virErrorDomain: the part of libvirt that raised the error (e.g. 10 = QEMU, 12 = test driver).</summary>
    public int ErrorDomain { get; }

    /// <summary>The libvirt function that failed, e.g. <c>virDomainCreate</c>.</summary>
    public string? Function { get; }
}

/// <summary>
/// virErrorNumber from virterror.h (the values are a stable ABI). Only the codes a caller is likely
/// to branch on are named; any other code still arrives as its numeric value.
/// </summary>
public enum LibvirtErrorCode
{
    Ok = 0,
    InternalError = 1,
    NoMemory = 2,
    NoSupport = 3,
    NoConnect = 5,
    InvalidConn = 6,
    InvalidDomain = 7,
    InvalidArg = 8,
    OperationFailed = 9,
    /// <summary>Malformed XML (libxml2's parse error).</summary>
    XmlError = 27,
    DomExist = 28,
    OperationDenied = 29,
    /// <summary>Malformed XML, with libxml2's line and column in the message.</summary>
    XmlDetail = 35,
    SystemError = 38,
    Rpc = 39,
    NoDomain = 42,
    NoNetwork = 43,
    AuthFailed = 45,
    NoStoragePool = 49,
    NoStorageVol = 50,
    OperationInvalid = 55,
    ConfigUnsupported = 67,
    OperationTimeout = 68,
    NoDomainSnapshot = 72,
    ArgumentUnsupported = 74,
    SnapshotRevertRisky = 77,
    OperationAborted = 78,
    /// <summary>A migration libvirt calls unsafe, e.g. of a disk on a local file system without MigrationFlags.Unsafe.</summary>
    MigrateUnsafe = 81,
    OperationUnsupported = 84,
    AgentUnresponsive = 86,
    ResourceBusy = 87,
    AccessDenied = 88,
    StorageVolExist = 90,
    CpuIncompatible = 91,
    XmlInvalidSchema = 92,
    DeviceMissing = 99,
    MultipleDomains = 110,
}
