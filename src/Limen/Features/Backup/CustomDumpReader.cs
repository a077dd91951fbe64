using System.Runtime.CompilerServices;
using System.Text;

namespace Limen.Features.Backup;

/// <summary>
/// Reads pg_dump's custom format as it streams past (fed buffer by buffer, never buffering the
/// data), so the backup takes its CSVs and row counts from the dump instead of reading the
/// database a second time. It understands the uncompressed archive a pipe receives
/// (<c>--compress=0</c>): the header, the table of contents (which names the table and the COPY
/// column list of each data entry), then each data block as length-prefixed chunks of COPY text.
/// The layout follows pg_backup_archiver.c and pg_backup_custom.c for archive versions 1.12 to 1.16
/// (PostgreSQL 9.5 to 17). Anything else — a newer version, compression, a malformed byte — throws
/// <see cref="UnreadableDumpException"/> and the caller reads the database itself instead.
/// </summary>
public sealed class CustomDumpReader(Func<CustomDumpReader.TableData, CustomDumpReader.ITableSink?> sinkFor)
{
    private const byte BlockData = 1;
    private const byte BlockBlobs = 3;

    private readonly List<byte> head = [];
    private Dictionary<int, TableData>? toc;
    private int intSize;

    // The block state machine; "pending" collects an int that straddles two buffers.
    private State state = State.BlockType;
    private byte blockType;
    private readonly byte[] pending = new byte[9];
    private int pendingCount;
    private long remaining;
    private TableData? current;
    private ITableSink? currentSink;
    private readonly byte[] lastBytes = new byte[EndOfData.Length];
    private int lastCount;

    /// <summary>How pg_dump ends every table's COPY text: the end-of-data line and two blank lines, not rows.</summary>
    private static ReadOnlySpan<byte> EndOfData => "\\.\n\n\n"u8;

    /// <summary>A table's data entry: its name, its schema and its COPY column list.</summary>
    public sealed record TableData(string Schema, string Table, IReadOnlyList<string> Columns)
    {
        public string Key => $"{Schema}.{Table}";
    }

    /// <summary>Receives one table's COPY text, in pieces that may split lines, then its end.</summary>
    public interface ITableSink
    {
        void Write(ReadOnlySpan<byte> copyText);

        void Complete();
    }

    /// <summary>Rows seen per table, keyed "schema.table" (lines of COPY text), once the stream has ended.</summary>
    public Dictionary<string, long> RowCounts { get; } = new(StringComparer.Ordinal);

    private enum State { BlockType, DumpId, ChunkLength, Chunk, BlobOid }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Feed(ReadOnlySpan<byte> data)
    {
        if (toc is null)
        {
            // The header and TOC are small (kilobytes); gather them and parse once they are complete.
            var before = head.Count;
            head.AddRange(data);
            if (TryReadHeaderAndToc(out var consumed))
            {
                var rest = consumed - before;
                head.Clear();
                data = data[rest..];
            }
            else
            {
                if (head.Count > 64 << 20)
                {
                    throw new UnreadableDumpException("no end of the table of contents within the first 64 MiB");
                }

                return;
            }
        }

        while (!data.IsEmpty)
        {
            switch (state)
            {
                case State.BlockType:
                    blockType = data[0];
                    data = data[1..];
                    if (blockType is not (BlockData or BlockBlobs))
                    {
                        throw new UnreadableDumpException($"unknown block type {blockType}");
                    }

                    state = State.DumpId;
                    break;
                case State.DumpId:
                    if (!TryReadInt(ref data, out var id))
                    {
                        return;
                    }

                    current = blockType == BlockData ? toc!.GetValueOrDefault((int)id) ?? throw new UnreadableDumpException($"data block {id} is not in the table of contents") : null;
                    currentSink = current is null ? null : sinkFor(current);
                    state = blockType == BlockBlobs ? State.BlobOid : State.ChunkLength;
                    break;
                case State.BlobOid:
                    if (!TryReadInt(ref data, out var oid))
                    {
                        return;
                    }

                    // Large objects (Limen has none) are skipped: each is chunks ending in 0; an oid of 0 ends them all.
                    state = oid == 0 ? State.BlockType : State.ChunkLength;
                    break;
                case State.ChunkLength:
                    if (!TryReadInt(ref data, out var length))
                    {
                        return;
                    }

                    if (length < 0)
                    {
                        throw new UnreadableDumpException($"negative chunk length {length}");
                    }

                    if (length == 0)
                    {
                        EndOfEntry();
                    }
                    else
                    {
                        remaining = length;
                        state = State.Chunk;
                    }

                    break;
                case State.Chunk:
                    var take = (int)Math.Min(remaining, data.Length);
                    var piece = data[..take];
                    if (current is not null)
                    {
                        RowCounts[current.Key] = RowCounts.GetValueOrDefault(current.Key) + piece.Count((byte)'\n');
                        KeepLastBytes(piece);
                        currentSink?.Write(piece);
                    }

                    data = data[take..];
                    remaining -= take;
                    if (remaining == 0)
                    {
                        state = State.ChunkLength;
                    }

                    break;
            }
        }
    }

    /// <summary>Checks the stream ended between blocks, as a complete archive does.</summary>
    public void Finish()
    {
        if (toc is null || state != State.BlockType)
        {
            throw new UnreadableDumpException("the archive ends inside " + (toc is null ? "its table of contents" : "a data block"));
        }
    }

    private void EndOfEntry()
    {
        if (blockType == BlockBlobs)
        {
            state = State.BlobOid;
            return;
        }

        if (current is not null)
        {
            var lines = RowCounts.GetValueOrDefault(current.Key);
            RowCounts[current.Key] = lastBytes.AsSpan(0, lastCount).SequenceEqual(EndOfData) ? lines - 3 : lines;
            lastCount = 0;
        }

        currentSink?.Complete();
        (current, currentSink, state) = (null, null, State.BlockType);
    }

    private void KeepLastBytes(ReadOnlySpan<byte> piece)
    {
        if (piece.Length >= lastBytes.Length)
        {
            piece[^lastBytes.Length..].CopyTo(lastBytes);
            lastCount = lastBytes.Length;
            return;
        }

        var keep = Math.Min(lastCount, lastBytes.Length - piece.Length);
        lastBytes.AsSpan(lastCount - keep, keep).CopyTo(lastBytes);
        piece.CopyTo(lastBytes.AsSpan(keep));
        lastCount = keep + piece.Length;
    }

    private bool TryReadInt(ref ReadOnlySpan<byte> data, out long value)
    {
        var needed = 1 + intSize;
        var take = Math.Min(needed - pendingCount, data.Length);
        data[..take].CopyTo(pending.AsSpan(pendingCount));
        pendingCount += take;
        data = data[take..];
        value = 0;
        if (pendingCount < needed)
        {
            return false;
        }

        pendingCount = 0;
        value = DecodeInt(pending.AsSpan(0, needed));
        return true;
    }

    /// <summary>A sign byte, then intSize bytes little-endian.</summary>
    private static long DecodeInt(ReadOnlySpan<byte> bytes)
    {
        long magnitude = 0;
        for (var i = bytes.Length - 1; i >= 1; i--)
        {
            magnitude = (magnitude << 8) | bytes[i];
        }

        return bytes[0] != 0 ? -magnitude : magnitude;
    }

    private bool TryReadHeaderAndToc(out int consumed)
    {
        var reader = new HeadReader([.. head]);
        consumed = 0;
        try
        {
            if (!reader.Bytes(5).SequenceEqual("PGDMP"u8))
            {
                throw new UnreadableDumpException("not a pg_dump custom-format archive");
            }

            var (major, minor) = (reader.Byte(), reader.Byte());
            reader.Byte(); // revision
            var version = (major * 100) + minor;
            if (major != 1 || minor is < 12 or > 16)
            {
                throw new UnreadableDumpException($"archive version {major}.{minor}");
            }

            reader.IntSize = reader.Byte();
            var offSize = reader.Byte();
            if (reader.IntSize is < 1 or > 8 || offSize is < 1 or > 8)
            {
                throw new UnreadableDumpException("implausible integer sizes");
            }

            if (reader.Byte() != 1)
            {
                throw new UnreadableDumpException("not the custom format");
            }

            // 1.15 (PostgreSQL 16) names the compression algorithm in a byte; older ones give a zlib level.
            var compressed = version >= 115 ? reader.Byte() != 0 : reader.Int() != 0;
            if (compressed)
            {
                throw new UnreadableDumpException("the archive is compressed");
            }

            for (var i = 0; i < 7; i++)
            {
                reader.Int(); // creation time
            }

            reader.String(); // database name
            reader.String(); // server version
            reader.String(); // pg_dump version
            var count = reader.Int();
            if (count is < 0 or > 10_000_000)
            {
                throw new UnreadableDumpException($"implausible entry count {count}");
            }

            var entries = new Dictionary<int, TableData>();
            for (var i = 0; i < count; i++)
            {
                var dumpId = (int)reader.Int();
                reader.Int(); // has a data dumper
                reader.String(); // table oid
                reader.String(); // oid
                var tag = reader.String();
                var desc = reader.String();
                reader.Int(); // section
                reader.String(); // definition
                reader.String(); // drop statement
                var copyStatement = reader.String();
                var schema = reader.String();
                reader.String(); // tablespace
                if (version >= 114)
                {
                    reader.String(); // table access method
                }

                if (version >= 116)
                {
                    reader.Int(); // relkind
                }

                reader.String(); // owner
                reader.String(); // "false": WITH OIDS, gone
                while (reader.String() is not null)
                {
                    // dependencies, up to a null string
                }

                reader.Byte(); // data state
                reader.Bytes(offSize); // data offset: unknown on a pipe
                if (desc == "TABLE DATA" && tag is not null && copyStatement is not null)
                {
                    entries[dumpId] = new TableData(schema ?? "", tag, CopyColumns(copyStatement));
                }
            }

            intSize = reader.IntSize;
            toc = entries;
            consumed = reader.Position;
            return true;
        }
        catch (EndOfHeadException)
        {
            return false;
        }
    }

    /// <summary>The column names of "COPY schema.table (a, "B c", …) FROM stdin;", unquoted.</summary>
    public static List<string> CopyColumns(string copyStatement)
    {
        var open = copyStatement.IndexOf(" (", StringComparison.Ordinal);
        var close = copyStatement.LastIndexOf(") FROM stdin", StringComparison.Ordinal);
        if (open < 0 || close < open)
        {
            throw new UnreadableDumpException($"unexpected COPY statement: {copyStatement.Trim()}");
        }

        var columns = new List<string>();
        var list = copyStatement.AsSpan(open + 2, close - open - 2);
        var name = new StringBuilder();
        var quoted = false;
        for (var i = 0; i < list.Length; i++)
        {
            var c = list[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < list.Length && list[i + 1] == '"')
                {
                    name.Append('"');
                    i++;
                }
                else if (c == '"')
                {
                    quoted = false;
                }
                else
                {
                    name.Append(c);
                }
            }
            else if (c == '"')
            {
                quoted = true;
            }
            else if (c == ',')
            {
                columns.Add(name.ToString());
                name.Clear();
            }
            else if (c != ' ')
            {
                name.Append(c);
            }
        }

        columns.Add(name.ToString());
        return columns;
    }

    private sealed class EndOfHeadException : Exception;

    /// <summary>Reads the gathered head; running out means "wait for more bytes".</summary>
    private sealed class HeadReader(byte[] bytes)
    {
        public int Position { get; private set; }

        public int IntSize { get; set; } = 4;

        public byte Byte() => Bytes(1)[0];

        public ReadOnlySpan<byte> Bytes(int count)
        {
            if (Position + count > bytes.Length)
            {
                throw new EndOfHeadException();
            }

            var span = bytes.AsSpan(Position, count);
            Position += count;
            return span;
        }

        public long Int() => DecodeInt(Bytes(1 + IntSize));

        public string? String()
        {
            var length = Int();
            if (length < 0)
            {
                return null;
            }

            if (length > 256 << 20)
            {
                throw new UnreadableDumpException($"implausible string length {length}");
            }

            return Encoding.UTF8.GetString(Bytes((int)length));
        }
    }
}

/// <summary>The dump is not one <see cref="CustomDumpReader"/> can follow; the message says where it stopped.</summary>
public sealed class UnreadableDumpException(string message) : Exception($"pg_dump's archive could not be read for CSVs: {message}");
