using System.Text.Json;
using System.Text.Json.Serialization;

namespace Limen.Features.Backup;

/// <summary>One file of the archive as the manifest vouches for it.</summary>
public sealed record ManifestFile(string Path, long Size, string Sha256);

/// <summary>
/// manifest.json: what the archive holds and how to check it. Never holds a connection string or
/// any other secret — <see cref="Database"/> is host:port/name only.
/// </summary>
public sealed record BackupManifest(
    string Format,
    int FormatVersion,
    DateTimeOffset CreatedAt,
    string LimenVersion,
    string? SchemaMigration,
    string PostgresVersion,
    string PgDumpVersion,
    string Database,
    Guid? BackupRunId,
    IReadOnlyDictionary<string, long> RowCounts,
    IReadOnlyList<ManifestFile> Files,
    IReadOnlyList<Guid> VmsWithoutDomain,
    IReadOnlyList<string> Notes)
{
    public const string FormatName = "limen-backup";

    /// <summary>Raise when the layout changes in a way an older restore would misread.</summary>
    public const int CurrentFormatVersion = 1;

    public const string FileName = "manifest.json";

    /// <summary>sha256sum-style line for manifest.json itself, so a flipped byte in the manifest is caught too.</summary>
    public const string ChecksumFileName = "manifest.json.sha256";

    public const string DumpFile = "database.dump";
    public const string ConfigFile = "config/limen.json";
    public const string MetadataDir = "metadata";
    public const string DomainsDir = "domains";

    public static readonly JsonSerializerOptions Json = CreateJson();

    public byte[] Serialize() => JsonSerializer.SerializeToUtf8Bytes(this, Json);

    /// <summary>Parses manifest.json, telling "not ours" and "newer format" apart from plain damage.</summary>
    public static BackupManifest Parse(byte[] content)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(content);
        }
        catch (JsonException e)
        {
            throw new ArchiveRejectedException($"manifest.json is not valid JSON ({e.Message}).");
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object
                || !root.TryGetProperty("format", out var format) || format.ValueKind != JsonValueKind.String || format.GetString() != FormatName)
            {
                throw new ArchiveRejectedException($"Not a Limen backup: manifest.json does not say \"format\": \"{FormatName}\".");
            }

            if (!root.TryGetProperty("format_version", out var version) || !version.TryGetInt32(out var number))
            {
                throw new ArchiveRejectedException("manifest.json has no format_version.");
            }

            if (number != CurrentFormatVersion)
            {
                throw new ArchiveRejectedException(
                    $"Unknown backup format version {number}; this Limen ({VersionInfo.Version}) reads version {CurrentFormatVersion}. " +
                    "Restore it with the Limen version that wrote it (manifest.json's limen_version).");
            }
        }

        try
        {
            return JsonSerializer.Deserialize<BackupManifest>(content, Json) ?? throw new ArchiveRejectedException("manifest.json is empty.");
        }
        catch (JsonException e)
        {
            throw new ArchiveRejectedException($"manifest.json does not match format version {CurrentFormatVersion}: {e.Message}");
        }
    }

    private static JsonSerializerOptions CreateJson()
    {
        var json = new JsonSerializerOptions
        {
            PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
            WriteIndented = true,
            // A file for people too: "15.18 (Debian 15.18-0+deb12u1)", not "\u002B". Never embedded in HTML.
            Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
            RespectNullableAnnotations = true,
            RespectRequiredConstructorParameters = true,
            UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
            // Generated at build time: reflection would cost a one-shot backup or restore tens of ms of JIT.
            TypeInfoResolver = BackupManifestJsonContext.Default,
        };
        json.MakeReadOnly();
        return json;
    }
}

/// <summary>The manifest's serialization code, generated at build time (same settings as <see cref="BackupManifest.Json"/>).</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    WriteIndented = true,
    RespectNullableAnnotations = true,
    RespectRequiredConstructorParameters = true,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow)]
[JsonSerializable(typeof(BackupManifest))]
internal sealed partial class BackupManifestJsonContext : JsonSerializerContext;
