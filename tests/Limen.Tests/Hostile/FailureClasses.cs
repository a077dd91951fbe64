using System.Text;
using System.Text.RegularExpressions;

namespace Limen.Tests.Hostile;

/// <summary>
/// Failures of generated cases, grouped into classes (what went wrong × status × problem type ×
/// kind of input), each with a count and its first full example, so one report names every class
/// to fix rather than the first case that broke.
/// </summary>
public sealed partial class FailureClasses(string subject)
{
    private readonly Dictionary<string, Class> classes = new(StringComparer.Ordinal);
    private int cases;

    private readonly List<string> notes = [];

    public int Cases => cases;

    /// <summary>A failure that belongs to no single case (a change found after a series of them).</summary>
    public void Note(string failure) => notes.Add(failure);

    /// <summary>Counts the case; a failing one joins the class of what went wrong, its status and its problem type.</summary>
    public void Record(HostileCase hostile, Exchange exchange, IReadOnlyList<string> violations)
    {
        cases++;
        if (violations.Count == 0)
        {
            return;
        }

        var what = string.Join(" + ", violations.Select(v => Variable().Replace(v, "…")).Distinct());
        var key = $"{what} | {exchange.Status} {exchange.ProblemType ?? exchange.MediaType ?? "no body"}";
        if (!classes.TryGetValue(key, out var found))
        {
            classes[key] = found = new Class($"{string.Join("; ", violations)}\n        {exchange}");
        }

        found.Count++;
        // Every part counts: the one that broke the server is among those that come back with the class.
        foreach (var input in hostile.Parts.Select(p => (p.Definite ? "" : "maybe ") + Detail().Replace(p.Label, "")).Distinct())
        {
            found.Inputs[input] = found.Inputs.GetValueOrDefault(input) + 1;
        }
    }

    public void AssertNone()
    {
        if (classes.Count == 0 && notes.Count == 0)
        {
            return;
        }

        var report = new StringBuilder($"{subject}: {classes.Values.Sum(c => c.Count)} of {cases} hostile cases failed, in {classes.Count} classes:\n");
        notes.ForEach(n => report.Append($"  {n}\n"));
        foreach (var (key, found) in classes.OrderByDescending(c => c.Value.Count))
        {
            var inputs = string.Join(", ", found.Inputs.OrderByDescending(i => i.Value).Take(12).Select(i => $"{i.Key} ×{i.Value}"));
            report.Append($"  [{found.Count}×] {key}\n      inputs: {inputs}{(found.Inputs.Count > 12 ? ", …" : "")}\n      e.g. {found.Example}\n");
        }

        Assert.Fail(report.ToString());
    }

    private sealed class Class(string example)
    {
        public string Example { get; } = example;
        public int Count { get; set; }
        public Dictionary<string, int> Inputs { get; } = new(StringComparer.Ordinal);
    }

    [GeneratedRegex(@" \([^)]*\)")]
    private static partial Regex Detail();

    // Hashes, row counts, ids and quoted values differ from case to case within one class.
    [GeneratedRegex(@"md5 [0-9a-f]+|sha256 [0-9a-f]+|\d+ rows|'[^']*'|[0-9a-f]{8}-[0-9a-f-]{27}|\b0H[0-9A-Z]+:[0-9A-F]+\b")]
    private static partial Regex Variable();
}
