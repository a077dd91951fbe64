using System.Buffers;
using System.Runtime.CompilerServices;
using System.Text;

namespace Limen.Features.Backup;

/// <summary>
/// Turns a table's COPY text (tab-separated, backslash escapes, \N for NULL) into the CSV that
/// <c>COPY … TO STDOUT WITH (FORMAT csv, HEADER)</c> would print for the chosen columns: NULL as
/// nothing, a value quoted (quotes doubled) when it is empty or holds a comma, a quote, CR or LF.
/// Lines may arrive split across writes. The per-row methods are compiled optimized at once: a
/// backup is a short process, and tiered compilation would run most rows through unoptimized code.
/// </summary>
public sealed class CopyTextToCsv : CustomDumpReader.ITableSink
{
    private readonly Stream output;
    private readonly int[] picked;
    private readonly ArrayBufferWriter<byte> line = new();
    private readonly ArrayBufferWriter<byte> csv = new(1 << 16);
    private readonly List<int> starts = [];
    private bool ended;

    /// <param name="columns">The COPY column list, in order.</param>
    /// <param name="wanted">The columns to keep, in the CSV's order; every one must be in <paramref name="columns"/>.</param>
    /// <param name="output">Receives the CSV; not disposed here.</param>
    public CopyTextToCsv(Stream output, IReadOnlyList<string> columns, IReadOnlyList<string> wanted)
    {
        this.output = output;
        picked = [.. wanted.Select(name => columns.ToList().IndexOf(name) is var at and >= 0 ? at : throw new UnreadableDumpException($"the dump has no column {name}"))];
        for (var i = 0; i < wanted.Count; i++)
        {
            if (i > 0)
            {
                csv.Write(","u8);
            }

            WriteValue(Encoding.UTF8.GetBytes(wanted[i]));
        }

        csv.Write("\n"u8);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Write(ReadOnlySpan<byte> copyText)
    {
        while (!copyText.IsEmpty)
        {
            var end = copyText.IndexOf((byte)'\n');
            if (end < 0)
            {
                line.Write(copyText);
                return;
            }

            if (line.WrittenCount > 0)
            {
                line.Write(copyText[..end]);
                Row(line.WrittenSpan);
                line.Clear();
            }
            else
            {
                Row(copyText[..end]);
            }

            copyText = copyText[(end + 1)..];
            if (csv.WrittenCount > 1 << 16)
            {
                Flush();
            }
        }
    }

    public void Complete()
    {
        if (line.WrittenCount > 0)
        {
            throw new UnreadableDumpException("a table's data ends inside a row");
        }

        Flush();
        output.Flush();
    }

    private void Flush()
    {
        output.Write(csv.WrittenSpan);
        csv.Clear();
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Row(ReadOnlySpan<byte> row)
    {
        // pg_dump ends each table's data with "\\.\n\n\n": the end-of-data line, then blank lines.
        if (ended || row.SequenceEqual("\\."u8))
        {
            ended = true;
            return;
        }

        starts.Clear();
        starts.Add(0);
        var rest = row;
        for (var tab = rest.IndexOf((byte)'\t'); tab >= 0; tab = rest.IndexOf((byte)'\t'))
        {
            starts.Add(starts[^1] + tab + 1);
            rest = rest[(tab + 1)..];
        }

        for (var i = 0; i < picked.Length; i++)
        {
            if (i > 0)
            {
                csv.Write(","u8);
            }

            var column = picked[i];
            if (column >= starts.Count)
            {
                throw new UnreadableDumpException($"a row has {starts.Count} fields, fewer than its table's columns");
            }

            var end = column + 1 < starts.Count ? starts[column + 1] - 1 : row.Length;
            var field = row[starts[column]..end];
            if (!field.SequenceEqual("\\N"u8))
            {
                WriteValue(field.IndexOf((byte)'\\') < 0 ? field : Unescape(field));
            }
        }

        csv.Write("\n"u8);
    }

    /// <summary>COPY text's escapes undone: \b \f \n \r \t \v and a backslash before any other character.</summary>
    private static byte[] Unescape(ReadOnlySpan<byte> field)
    {
        var value = new byte[field.Length];
        var n = 0;
        for (var i = 0; i < field.Length; i++)
        {
            var c = field[i];
            if (c == '\\' && i + 1 < field.Length)
            {
                c = field[++i] switch
                {
                    (byte)'b' => 8,
                    (byte)'f' => 12,
                    (byte)'n' => 10,
                    (byte)'r' => 13,
                    (byte)'t' => 9,
                    (byte)'v' => 11,
                    var other => other,
                };
            }

            value[n++] = c;
        }

        return value[..n];
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void WriteValue(ReadOnlySpan<byte> value)
    {
        if (!value.IsEmpty && value.IndexOfAny(",\"\n\r"u8) < 0)
        {
            csv.Write(value);
            return;
        }

        csv.Write("\""u8);
        for (var at = value.IndexOf((byte)'"'); at >= 0; at = value.IndexOf((byte)'"'))
        {
            csv.Write(value[..(at + 1)]);
            csv.Write("\""u8);
            value = value[(at + 1)..];
        }

        csv.Write(value);
        csv.Write("\""u8);
    }
}
