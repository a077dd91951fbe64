using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Limen.Libvirt;

// Process-wide libvirt setup and the helpers every wrapper uses to turn a failed native call into a
// LibvirtException.
internal static unsafe class Native
{
    private static readonly Lock InitLock = new();
    private static bool initialized;

    // Must run before the first connection is opened: libvirt only delivers events (and runs the
    // keepalive of remote connections) on connections opened after an event implementation exists.
    internal static void EnsureInitialized()
    {
        lock (InitLock)
        {
            if (initialized)
            {
                return;
            }
            Check(NativeMethods.virInitialize());
            // Without a handler libvirt prints every error to stderr; we report errors as exceptions.
            NativeMethods.virSetErrorFunc(0, &IgnoreError);
            Check(NativeMethods.virEventRegisterDefaultImpl());
            // The default event loop is driven by whoever calls virEventRunDefaultImpl: one background
            // thread for the whole process, which lives as long as the process.
            new Thread(RunEventLoop) { IsBackground = true, Name = "libvirt-event-loop" }.Start();
            initialized = true;
        }
    }

    [UnmanagedCallersOnly]
    private static void IgnoreError(nint userData, nint error) { }

    private static void RunEventLoop()
    {
        while (true)
        {
            // Fails only on a broken poll(); back off instead of spinning.
            if (NativeMethods.virEventRunDefaultImpl() < 0)
            {
                Thread.Sleep(100);
            }
        }
    }

    // libvirt keeps the last error per thread, and a P/Invoke call runs on the calling thread, so
    // reading it right after the failed call (no await in between) yields that call's error.
    internal static LibvirtException LastError(string function)
    {
        var code = (LibvirtErrorCode)NativeMethods.virGetLastErrorCode();
        var domain = NativeMethods.virGetLastErrorDomain();
        var message = code == LibvirtErrorCode.Ok
            ? $"{function} failed without a libvirt error"
            : Marshal.PtrToStringUTF8(NativeMethods.virGetLastErrorMessage()) ?? $"{function} failed";
        return new LibvirtException(message, code, domain, function);
    }

    internal static int Check(int result, [CallerArgumentExpression(nameof(result))] string call = "")
        => result < 0 ? throw LastError(FunctionName(call)) : result;

    internal static T Check<T>(T handle, [CallerArgumentExpression(nameof(handle))] string call = "")
        where T : SafeHandle
    {
        if (handle.IsInvalid)
        {
            var error = LastError(FunctionName(call));
            handle.Dispose();
            throw error;
        }
        return handle;
    }

    // For char * results that the caller must free().
    internal static string TakeString(nint text, [CallerArgumentExpression(nameof(text))] string call = "")
    {
        if (text == 0)
        {
            throw LastError(FunctionName(call));
        }
        try
        {
            return Marshal.PtrToStringUTF8(text)!;
        }
        finally
        {
            NativeMemory.Free((void*)text);
        }
    }

    // For const char * results owned by libvirt.
    internal static string CopyString(nint text, [CallerArgumentExpression(nameof(text))] string call = "")
        => text == 0 ? throw LastError(FunctionName(call)) : Marshal.PtrToStringUTF8(text)!;

    // For char name[N] fields of libvirt structs: NUL-terminated unless the name fills the field.
    internal static string FixedString(byte* text, int capacity)
    {
        var bytes = new ReadOnlySpan<byte>(text, capacity);
        var end = bytes.IndexOf((byte)0);
        return System.Text.Encoding.UTF8.GetString(end >= 0 ? bytes[..end] : bytes);
    }

    // libvirt UUIDs are the 16 raw RFC 4122 bytes, i.e. big-endian fields.
    internal static Guid ToGuid(byte* uuid) => new(new ReadOnlySpan<byte>(uuid, 16), bigEndian: true);

    // "NativeMethods.virDomainCreate(Handle)" -> "virDomainCreate"
    private static string FunctionName(string call)
    {
        var start = call.IndexOf("vir", StringComparison.Ordinal);
        var end = call.IndexOf('(', Math.Max(start, 0));
        return start >= 0 && end > start ? call[start..end] : call;
    }
}
