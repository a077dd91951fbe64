using Limen.Data;
using Limen.Features.Outcomes;
using Limen.Web;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace Limen.Features.Backup;

/// <summary>A restore drill's evidence: the JSON report it wrote and the Markdown one beside it (<see cref="DrillReport.Write"/>).</summary>
public sealed record DrillEvidence(BackupRun Run, string JsonPath, string? Markdown);

/// <summary>
/// What backup_runs records of `limen backup`, `restore` and `drill`, for admins: the history page
/// and the drill report download.
/// </summary>
public static class BackupHistory
{
    public static IEndpointRouteBuilder MapBackups(this IEndpointRouteBuilder routes)
    {
        routes.MapGet("/api/admin/backups/{id:guid}/report", Report).WithTags("Backups").RequireAuthorization(Policies.Admin);
        return routes;
    }

    /// <summary>Runs newest first.</summary>
    public static async Task<Outcome<PagedList<BackupRun>>> ListAsync(LimenDbContext db, PageRequest page, CancellationToken cancellationToken)
    {
        if (page.Validate() is { } problem)
        {
            return new Invalid(problem.Field, problem.Detail);
        }

        var total = await db.BackupRuns.CountAsync(cancellationToken);
        var runs = await db.BackupRuns.AsNoTracking().OrderByDescending(r => r.StartedAt).ThenBy(r => r.Id)
            .Skip(page.Skip).Take(page.Size).ToListAsync(cancellationToken);
        return new PagedList<BackupRun>(runs, total, page.Number, page.Size);
    }

    /// <summary>The drill report of run <paramref name="id"/>, when the run wrote one and the file is still there.</summary>
    public static async Task<Outcome<DrillEvidence>> EvidenceAsync(LimenDbContext db, Guid id, CancellationToken cancellationToken)
    {
        var run = await db.BackupRuns.AsNoTracking().FirstOrDefaultAsync(r => r.Id == id, cancellationToken);
        if (run?.ReportPath is not { } json || !File.Exists(json))
        {
            return new Outcomes.NotFound("The drill report");
        }

        var markdown = Path.ChangeExtension(json, ".md");
        return new DrillEvidence(run, json, File.Exists(markdown) ? await File.ReadAllTextAsync(markdown, cancellationToken) : null);
    }

    private static async Task<Results<PhysicalFileHttpResult, ProblemHttpResult>> Report(Guid id, LimenDbContext db, CancellationToken cancellationToken)
    {
        var evidence = await EvidenceAsync(db, id, cancellationToken);
        return evidence.Failure is { } failure
            ? failure.ToProblem()
            : TypedResults.PhysicalFile(evidence.Value.JsonPath, "application/json", Path.GetFileName(evidence.Value.JsonPath));
    }
}
