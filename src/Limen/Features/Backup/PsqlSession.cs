using System.Diagnostics;

namespace Limen.Features.Backup;

/// <summary>
/// One psql process kept open to run a backup's reads in a single transaction, command batch by
/// command batch. Why psql and not Npgsql: a backup is a short-lived command, and psql is native —
/// its first answer comes about 20 ms after start, where Npgsql's first connection costs about
/// 0.3 s of JIT before pg_dump could be given the snapshot. The CSV exports are psql's \copy,
/// written straight to their files. Each batch ends with an \echo of a marker no query prints, so
/// the answer is the lines before it; psql flushes after each command.
/// </summary>
public sealed class PsqlSession : IAsyncDisposable
{
    private readonly Process process;
    private readonly Task<string> errors;
    private readonly string marker = "__limen_end_of_batch_" + Guid.NewGuid().ToString("N");

    private PsqlSession(Process process)
    {
        this.process = process;
        errors = process.StandardError.ReadToEndAsync();
    }

    /// <param name="variables">psql variables, given on the command line and quoted by psql as literals where used as :'name'.</param>
    /// <param name="workingDirectory">Where relative \copy file names point (so no path needs quoting in a command).</param>
    public static PsqlSession Start(string psql, IDictionary<string, string> environment, IReadOnlyDictionary<string, string> variables, string workingDirectory) =>
        new(PgTools.Start(psql,
            ["--no-psqlrc", "--no-align", "--tuples-only", "--quiet", "--no-password", "--set=ON_ERROR_STOP=1",
             .. variables.Select(v => $"--set={v.Key}={v.Value}")],
            environment, redirectInput: true, workingDirectory: workingDirectory));

    /// <summary>
    /// Runs <paramref name="commands"/> (SQL statements and meta-commands, each on its own line) and
    /// returns what they printed, a line per row. A failed command ends psql (ON_ERROR_STOP): that
    /// throws with psql's own message.
    /// </summary>
    public async Task<List<string>> RunAsync(string commands, CancellationToken cancellationToken)
    {
        try
        {
            await process.StandardInput.WriteAsync($"{commands}\n\\echo {marker}\n".AsMemory(), cancellationToken);
            await process.StandardInput.FlushAsync(cancellationToken);
        }
        catch (IOException)
        {
            // psql already ended (it could not connect): its exit explains why, below.
        }

        var lines = new List<string>();
        while (await process.StandardOutput.ReadLineAsync(cancellationToken) is { } line)
        {
            if (line == marker)
            {
                return lines;
            }

            lines.Add(line);
        }

        await PgTools.WaitAsync(process, cancellationToken);
        throw new BackupFailedException(Describe(process.ExitCode, await errors));
    }

    /// <summary>psql's error as an operator reads the server's: "PostgreSQL: …" (connection refused, authentication, a failed query).</summary>
    private static string Describe(int exitCode, string stderr)
    {
        var message = PgTools.Tail(stderr.Replace("psql: error: ", "", StringComparison.Ordinal).Replace("psql:<stdin>:", "line ", StringComparison.Ordinal));
        return message.Length > 0 ? $"PostgreSQL: {message}" : $"psql ended (exit code {exitCode}) without saying why.";
    }

    /// <summary>Ends the session; an open transaction (a failed backup's snapshot) is rolled back by the server when psql disconnects.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            process.StandardInput.Close();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await PgTools.WaitAsync(process, timeout.Token);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException)
        {
            // Already gone, or killed by WaitAsync.
        }

        process.Dispose();
    }
}
