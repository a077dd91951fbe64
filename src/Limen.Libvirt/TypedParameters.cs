using System.Globalization;
using System.Runtime.InteropServices;

namespace Limen.Libvirt;

// virTypedParameter arrays in both directions: reading what libvirt returns (stats, job stats) and
// building what it takes (migration parameters).
internal static unsafe class TypedParameters
{
    // Copies count parameters into a dictionary: int, uint, long, ulong, double, bool or string values.
    // The array stays the caller's to free.
    internal static Dictionary<string, object> Read(VirTypedParameter* parameters, int count)
    {
        var values = new Dictionary<string, object>(count);
        for (var p = 0; p < count; p++)
        {
            var param = &parameters[p];
            values[Native.FixedString(param->Field, 80)] = param->Type switch
            {
                1 => param->I,
                2 => param->UI,
                3 => param->L,
                4 => param->UL,
                5 => param->D,
                6 => param->B != 0,
                7 => Marshal.PtrToStringUTF8(param->S) ?? "",
                var t => throw new LibvirtException($"unknown virTypedParameterType {t}"),
            };
        }
        return values;
    }

    // A numeric value as ulong; null when absent or not a number.
    internal static ulong? Number(IReadOnlyDictionary<string, object> values, string key)
        => values.TryGetValue(key, out var v) && v is not string and not bool ? Convert.ToUInt64(v, CultureInfo.InvariantCulture) : null;
}

/// <summary>
/// A virTypedParameter array built with libvirt's virTypedParamsAdd* (which copy names and strings
/// and grow the array with their own allocator), so it is freed by virTypedParamsFree in
/// <see cref="Dispose"/>: on success and when an Add failed halfway alike. Not thread-safe; one call's
/// argument.
/// </summary>
internal sealed unsafe class TypedParameterList : IDisposable
{
    private nint items;
    private int count;
    private int capacity;

    // virTypedParamsAdd* report errors through libvirt's thread-local error, which needs virInitialize
    // (a list may be built before any connection was opened).
    internal TypedParameterList() => Native.EnsureInitialized();

    internal VirTypedParameter* Items => (VirTypedParameter*)items;

    internal int Count => count;

    internal void Add(string name, string value)
        => Native.Check(NativeMethods.virTypedParamsAddString(ref items, ref count, ref capacity, name, value));

    internal void Add(string name, ulong value)
        => Native.Check(NativeMethods.virTypedParamsAddULLong(ref items, ref count, ref capacity, name, value));

    /// <summary>One parameter per value, all named <paramref name="name"/> (virTypedParamsAddStringList).</summary>
    internal void Add(string name, IReadOnlyList<string> values)
    {
        // NULL-terminated const char ** of UTF-8 copies, ours to free; libvirt copies them again.
        var strings = new nint[values.Count + 1];
        try
        {
            for (var i = 0; i < values.Count; i++)
            {
                strings[i] = Marshal.StringToCoTaskMemUTF8(values[i] ?? throw new ArgumentException($"{name} holds a null", nameof(values)));
            }
            fixed (nint* array = strings)
            {
                Native.Check(NativeMethods.virTypedParamsAddStringList(ref items, ref count, ref capacity, name, array));
            }
        }
        finally
        {
            foreach (var s in strings)
            {
                Marshal.FreeCoTaskMem(s);
            }
        }
    }

    public void Dispose()
    {
        if (items != 0)
        {
            NativeMethods.virTypedParamsFree(items, count);
            items = 0;
            count = 0;
            capacity = 0;
        }
    }
}
