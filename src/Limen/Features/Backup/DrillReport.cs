using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Limen.Features.Backup;

public sealed record DrillArchive(
    string Path, long SizeBytes, bool FreshBackup, DateTimeOffset CreatedAt, string LimenVersion, string? SchemaMigration, string PostgresVersion);

public sealed record DrillStep(string Name, string Result, double DurationSeconds, string? Detail);

/// <summary>The drill's evidence: written as drill-&lt;timestamp&gt;.json (for machines) and .md (for people), pass or fail.</summary>
public sealed record DrillReport(
    string Result,
    DateTimeOffset StartedAt,
    DateTimeOffset FinishedAt,
    double DurationSeconds,
    string LimenVersion,
    string Hostname,
    string SourceDatabase,
    DrillArchive? Archive,
    string? ScratchDatabase,
    string? InstanceUrl,
    double? RestoreSeconds,
    IReadOnlyList<RowCountCheck> RowCounts,
    IReadOnlyList<DrillStep> Steps,
    string? Error)
{
    public const string Passed = "passed";
    public const string Failed = "failed";

    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static IReadOnlyList<DrillStep> From(IEnumerable<StepRecord> records) =>
        records.Select(r => new DrillStep(r.Name, r.Outcome.ToString().ToLowerInvariant(), Math.Round(r.Duration.TotalSeconds, 3), r.Detail)).ToList();

    /// <summary>Writes both files next to each other; returns the JSON file's path.</summary>
    public (string Json, string Markdown) Write(string dir)
    {
        var full = BackupArchive.EnsurePrivateDirectory(dir);
        var stem = Path.Combine(full, $"drill-{StartedAt.UtcDateTime:yyyyMMdd'T'HHmmss'Z'}");
        File.WriteAllText(stem + ".json", JsonSerializer.Serialize(this, Json));
        File.WriteAllText(stem + ".md", ToMarkdown());
        return (stem + ".json", stem + ".md");
    }

    public string ToMarkdown()
    {
        var md = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        md.AppendLine(inv, $"# Restore drill {StartedAt:u}: {Result.ToUpperInvariant()}");
        md.AppendLine();
        if (Error is not null)
        {
            md.AppendLine(inv, $"**Failure:** {Error}");
            md.AppendLine();
        }

        md.AppendLine("| | |");
        md.AppendLine("|---|---|");
        md.AppendLine(inv, $"| Limen | {LimenVersion} on {Hostname} |");
        md.AppendLine(inv, $"| Source database | {SourceDatabase} |");
        if (Archive is { } a)
        {
            md.AppendLine(inv, $"| Archive | `{a.Path}` ({BackupCreator.Size(a.SizeBytes)}, {(a.FreshBackup ? "fresh backup" : "given archive")}) |");
            md.AppendLine(inv, $"| Archive created | {a.CreatedAt:u} by Limen {a.LimenVersion}, schema {a.SchemaMigration ?? "none"}, PostgreSQL {a.PostgresVersion} |");
        }

        md.AppendLine(inv, $"| Scratch database | {ScratchDatabase ?? "—"} (dropped afterwards) |");
        md.AppendLine(inv, $"| Drill instance | {InstanceUrl ?? "—"} (libvirt read-only) |");
        md.AppendLine(inv, $"| Restore time | {(RestoreSeconds is { } r ? r.ToString("0.00", inv) + " s" : "—")} |");
        md.AppendLine(inv, $"| Total | {DurationSeconds.ToString("0.00", inv)} s |");
        md.AppendLine();
        md.AppendLine("## Steps");
        md.AppendLine();
        md.AppendLine("| # | Step | Result | Seconds | Detail |");
        md.AppendLine("|---|---|---|---|---|");
        for (var i = 0; i < Steps.Count; i++)
        {
            var s = Steps[i];
            md.AppendLine(inv, $"| {i + 1} | {Cell(s.Name)} | {s.Result} | {s.DurationSeconds.ToString("0.000", inv)} | {Cell(s.Detail ?? "")} |");
        }

        if (RowCounts.Count > 0)
        {
            md.AppendLine();
            md.AppendLine("## Row counts (archive manifest vs restored)");
            md.AppendLine();
            md.AppendLine("| Table | Manifest | Restored | |");
            md.AppendLine("|---|---:|---:|---|");
            foreach (var c in RowCounts)
            {
                md.AppendLine(inv, $"| {Cell(c.Table)} | {c.Expected} | {c.Restored} | {(c.Matches ? "ok" : "MISMATCH")} |");
            }
        }

        return md.ToString();
    }

    private static string Cell(string text) => text.Replace("|", "\\|", StringComparison.Ordinal).Replace("\n", " ", StringComparison.Ordinal);
}
