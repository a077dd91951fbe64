using System.Diagnostics;
using Spectre.Console;

namespace Limen.Features.Backup;

public enum StepOutcome
{
    Passed,
    Failed,
    Skipped,
}

/// <summary>What one step did: the drill's evidence report is built from these.</summary>
public sealed record StepRecord(string Name, StepOutcome Outcome, TimeSpan Duration, string? Detail);

/// <summary>A running step: the body may say how far it is and leave a one-line result.</summary>
public sealed class StepProgress(Action<double>? onProgress)
{
    /// <summary>Shown next to the step when it ends (sizes, counts) and kept in its record.</summary>
    public string? Detail { get; set; }

    /// <summary>Fraction done, 0..1; steps that never call this show as indeterminate.</summary>
    public void Report(double fraction) => onProgress?.Invoke(Math.Clamp(fraction, 0, 1));
}

/// <summary>
/// Runs the named steps of a backup, restore or drill: times each, records its outcome, and shows
/// it — a Spectre.Console progress display on a terminal, one plain line per event otherwise
/// (systemd journal, CI logs). A failing step rethrows after being recorded.
/// </summary>
public abstract class Steps
{
    private readonly Lock gate = new();
    private readonly List<StepRecord> records = [];

    public IReadOnlyList<StepRecord> Records
    {
        get
        {
            lock (gate)
            {
                return [.. records];
            }
        }
    }

    public async Task<T> RunAsync<T>(string name, Func<StepProgress, Task<T>> body)
    {
        var display = Started(name);
        var step = new StepProgress(display.Progress);
        var started = Stopwatch.GetTimestamp();
        try
        {
            var result = await body(step);
            Finish(display, new StepRecord(name, StepOutcome.Passed, Stopwatch.GetElapsedTime(started), step.Detail));
            return result;
        }
        catch (Exception e)
        {
            Finish(display, new StepRecord(name, StepOutcome.Failed, Stopwatch.GetElapsedTime(started), BackupFailedException.Describe(e)));
            throw;
        }
    }

    public Task RunAsync(string name, Func<StepProgress, Task> body) => RunAsync(name, async step =>
    {
        await body(step);
        return true;
    });

    public void Skip(string name, string reason)
    {
        var display = Started(name);
        Finish(display, new StepRecord(name, StepOutcome.Skipped, TimeSpan.Zero, reason));
    }

    /// <summary>A line that is not a step (warnings, where the result went).</summary>
    public abstract void Note(string line);

    protected abstract StepDisplay Started(string name);

    protected abstract void Ended(StepDisplay display, StepRecord record);

    private void Finish(StepDisplay display, StepRecord record)
    {
        lock (gate)
        {
            records.Add(record);
        }

        Ended(display, record);
    }

    protected static string Format(StepRecord record) =>
        $"{record.Name}{(record.Detail is null ? "" : ": " + record.Detail)} ({record.Duration.TotalSeconds:0.00} s)";

    /// <summary>How a step is shown while it runs.</summary>
    protected sealed class StepDisplay(Action<double>? progress, object? state = null)
    {
        public Action<double>? Progress { get; } = progress;
        public object? State { get; } = state;
    }

    /// <summary>Runs <paramref name="operation"/> with a live display on a terminal, plain lines otherwise.</summary>
    public static async Task<T> OnConsoleAsync<T>(Func<Steps, Task<T>> operation)
    {
        if (Console.IsOutputRedirected || !AnsiConsole.Profile.Capabilities.Interactive)
        {
            return await operation(new PlainSteps(Console.Out));
        }

        T result = default!;
        await AnsiConsole.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new SpinnerColumn())
            .StartAsync(async context => result = await operation(new SpectreSteps(context)));
        return result;
    }
}

/// <summary>One line per step start and end, for logs.</summary>
public sealed class PlainSteps(TextWriter output) : Steps
{
    public override void Note(string line) => Write(line);

    protected override StepDisplay Started(string name)
    {
        Write($"...  {name}");
        return new StepDisplay(null);
    }

    protected override void Ended(StepDisplay display, StepRecord record) => Write(record.Outcome switch
    {
        StepOutcome.Passed => $"ok   {Format(record)}",
        StepOutcome.Skipped => $"skip {record.Name}: {record.Detail}",
        _ => $"FAIL {Format(record)}",
    });

    private void Write(string line)
    {
        lock (output)
        {
            output.WriteLine(line);
            output.Flush();
        }
    }
}

/// <summary>A Spectre.Console progress task per step.</summary>
public sealed class SpectreSteps(ProgressContext context) : Steps
{
    public override void Note(string line) => AnsiConsole.MarkupLine(Markup.Escape(line));

    protected override StepDisplay Started(string name)
    {
        var task = context.AddTask(Markup.Escape(name), maxValue: 1);
        task.IsIndeterminate = true;
        return new StepDisplay(fraction =>
        {
            task.IsIndeterminate = false;
            task.Value = fraction;
        }, task);
    }

    protected override void Ended(StepDisplay display, StepRecord record)
    {
        var task = (ProgressTask)display.State!;
        task.IsIndeterminate = false;
        var mark = record.Outcome switch
        {
            StepOutcome.Passed => "[green]ok[/]",
            StepOutcome.Skipped => "[grey]skip[/]",
            _ => "[red]FAIL[/]",
        };
        task.Description = $"{mark} {Markup.Escape(record.Name)}{(record.Detail is null ? "" : " [grey]" + Markup.Escape(record.Detail) + "[/]")}";
        task.Value = task.MaxValue;
        task.StopTask();
    }
}
