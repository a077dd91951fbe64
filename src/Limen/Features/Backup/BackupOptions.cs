using Limen.Hosting;

namespace Limen.Features.Backup;

/// <summary>Settings under "Limen:Backup" (env Limen__Backup__Name).</summary>
public sealed class BackupOptions
{
    public const string Section = "Limen:Backup";

    /// <summary>Where `limen backup` and the drill's fresh backups go; default &lt;state&gt;/backups.</summary>
    public string? Dir { get; set; }

    /// <summary>Where the drill writes its evidence reports; default &lt;state&gt;/drills.</summary>
    public string? DrillReportDir { get; set; }

    /// <summary>Folder holding pg_dump, pg_restore and psql; default: /usr/lib/postgresql/&lt;server major&gt;/bin, then PATH.</summary>
    public string? PgBinDir { get; set; }

    /// <summary>Prefix of the drill's scratch databases, so leftovers of a killed drill are recognisable.</summary>
    public string ScratchDatabasePrefix { get; set; } = "limen_drill_";

    public static BackupOptions From(IConfiguration configuration) =>
        configuration.GetSection(Section).Get<BackupOptions>() ?? new BackupOptions();

    public string BackupDir(IConfiguration configuration) =>
        Path.GetFullPath(Dir ?? Path.Combine(configuration.GetLimenOptions().FullStateDir, "backups"));

    public string ReportDir(IConfiguration configuration) =>
        Path.GetFullPath(DrillReportDir ?? Path.Combine(configuration.GetLimenOptions().FullStateDir, "drills"));
}
