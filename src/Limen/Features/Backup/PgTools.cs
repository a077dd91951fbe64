using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Npgsql;

namespace Limen.Features.Backup;

/// <summary>
/// pg_dump, pg_restore and psql of one PostgreSQL client version, at least as new as the server
/// (pg_dump refuses older servers' dumps the other way round). Connection details reach them through
/// PG* environment variables, so the password never appears on a command line (ps) or in a log.
/// </summary>
public sealed partial class PgTools
{
    private const string VersionedRoot = "/usr/lib/postgresql";

    private Task<string>? dumpVersion;

    private PgTools(string binDir, string? dumpVersion, int major)
    {
        BinDir = binDir;
        this.dumpVersion = dumpVersion is null ? null : Task.FromResult(dumpVersion);
        Major = major;
    }

    public string BinDir { get; }

    /// <summary>The tools' major version (Debian's folder name, else pg_dump --version).</summary>
    public int Major { get; }

    /// <summary>pg_dump --version, recorded in the manifest; asked once, when first needed.</summary>
    public Task<string> DumpVersionAsync(CancellationToken cancellationToken) => dumpVersion ??= AskDumpVersionAsync(cancellationToken);

    private async Task<string> AskDumpVersionAsync(CancellationToken cancellationToken)
    {
        var (exitCode, output) = await RunAsync(PgDump, ["--version"], null, cancellationToken);
        return exitCode == 0 ? output.Trim() : throw new BackupFailedException($"{PgDump} --version failed (exit code {exitCode}): {output}");
    }

    public string PgDump => Path.Combine(BinDir, "pg_dump");
    public string PgRestore => Path.Combine(BinDir, "pg_restore");
    public string Psql => Path.Combine(BinDir, "psql");

    /// <summary>
    /// The configured folder, else Debian's /usr/lib/postgresql/N/bin for the server's major (or the
    /// next newer), else PATH. A <paramref name="serverMajor"/> of 0 (not known yet) takes the oldest
    /// installed: its psql can ask the server for its version, and the caller resolves again if pg_dump must be newer.
    /// </summary>
    public static async Task<PgTools> ResolveAsync(string? configured, int serverMajor, CancellationToken cancellationToken)
    {
        var candidates = configured is not null ? [new Candidate(configured, null)] : Candidates(serverMajor);
        var seen = new List<string>();
        foreach (var (dir, versionedMajor) in candidates)
        {
            if (!File.Exists(Path.Combine(dir, "pg_dump")) || !File.Exists(Path.Combine(dir, "pg_restore")) || !File.Exists(Path.Combine(dir, "psql")))
            {
                continue;
            }

            // Debian installs major N's client as /usr/lib/postgresql/N/bin (postgresql-client-N): its
            // name says the version, and a restore does not wait for a process start to learn it.
            if (versionedMajor is { } known)
            {
                return new PgTools(dir, null, known);
            }

            var (exitCode, output) = await RunAsync(Path.Combine(dir, "pg_dump"), ["--version"], null, cancellationToken);
            var match = VersionPattern().Match(output);
            if (exitCode == 0 && match.Success && int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) is var major && major >= serverMajor)
            {
                return new PgTools(dir, output.Trim(), major);
            }

            seen.Add($"{dir} ({output.Trim()})");
        }

        throw new BackupFailedException(
            "No pg_dump/pg_restore/psql" + (serverMajor > 0 ? $" for PostgreSQL {serverMajor} or newer" : "") + " found" +
            (configured is not null ? $" in Limen:Backup:PgBinDir ({configured})" : $" in {VersionedRoot}/*/bin or on PATH") +
            (seen.Count > 0 ? $"; too old: {string.Join(", ", seen)}" : "") +
            $". Install postgresql-client{(serverMajor > 0 ? $"-{serverMajor}" : "")} or set Limen:Backup:PgBinDir.");
    }

    /// <summary>A folder to try; Debian's versioned ones come with their major.</summary>
    private sealed record Candidate(string Dir, int? Major);

    /// <summary>
    /// Folders to try, in order. Plain loops over a class: LINQ over value tuples is not in the
    /// precompiled images, and compiling it had cost a restore about 20 ms on the way to pg_restore.
    /// </summary>
    private static List<Candidate> Candidates(int serverMajor)
    {
        var candidates = new List<Candidate>();
        if (Directory.Exists(VersionedRoot))
        {
            foreach (var dir in Directory.GetDirectories(VersionedRoot))
            {
                if (int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var major) && major >= serverMajor)
                {
                    candidates.Add(new Candidate(Path.Combine(dir, "bin"), major));
                }
            }

            // The server's own major first: the closest match restores most faithfully.
            candidates.Sort((a, b) => a.Major!.Value.CompareTo(b.Major!.Value));
        }

        foreach (var dir in (System.Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            candidates.Add(new Candidate(dir, null));
        }

        return candidates;
    }

    /// <summary>libpq's environment for <paramref name="connectionString"/>; the tools inherit nothing else that names a server.</summary>
    public static Dictionary<string, string> Environment(string connectionString, string applicationName)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        var hosts = (builder.Host ?? "localhost").Split(',', StringSplitOptions.TrimEntries).Select(h => SplitHostPort(h, builder.Port)).ToList();
        var env = new Dictionary<string, string>
        {
            // libpq lists several hosts and their ports apart (PGHOST=a,b PGPORT=1,2) where Npgsql writes a:1,b:2.
            ["PGHOST"] = string.Join(',', hosts.Select(h => h.Host)),
            ["PGPORT"] = string.Join(',', hosts.Select(h => h.Port.ToString(CultureInfo.InvariantCulture))),
            ["PGDATABASE"] = builder.Database ?? "",
            ["PGAPPNAME"] = applicationName,
            ["PGCONNECT_TIMEOUT"] = Math.Max(builder.Timeout, 2).ToString(CultureInfo.InvariantCulture),
        };
        if (hosts.Count > 1)
        {
            // A backup reads and a restore writes the database Limen serves from: the primary.
            env["PGTARGETSESSIONATTRS"] = "primary";
        }

        if (!string.IsNullOrEmpty(builder.Username))
        {
            env["PGUSER"] = builder.Username;
        }

        if (!string.IsNullOrEmpty(builder.Password))
        {
            env["PGPASSWORD"] = builder.Password;
        }

        env["PGSSLMODE"] = builder.SslMode switch
        {
            SslMode.Disable => "disable",
            SslMode.Allow => "allow",
            SslMode.Require => "require",
            SslMode.VerifyCA => "verify-ca",
            SslMode.VerifyFull => "verify-full",
            _ => "prefer",
        };
        return env;
    }

    /// <summary>Npgsql's "host:port" (or "[v6]:port") entry; a bare host gets <paramref name="defaultPort"/>.</summary>
    private static (string Host, int Port) SplitHostPort(string entry, int defaultPort)
    {
        var colon = entry.LastIndexOf(':');
        var bracketed = entry.StartsWith('[');
        if (colon > 0 && (bracketed ? entry[colon - 1] == ']' : entry.IndexOf(':') == colon)
            && int.TryParse(entry[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var port))
        {
            return (entry[..colon].Trim('[', ']'), port);
        }

        return (entry.Trim('[', ']'), defaultPort);
    }

    /// <summary>Starts a tool with libpq's environment; stdin/stdout redirected as asked, stderr always kept.</summary>
    public static Process Start(
        string file, IEnumerable<string> args, IDictionary<string, string>? environment, bool redirectInput = false, bool redirectOutput = true, string? workingDirectory = null)
    {
        var start = new ProcessStartInfo(file)
        {
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? "",
            RedirectStandardInput = redirectInput,
            RedirectStandardOutput = redirectOutput,
            RedirectStandardError = true,
        };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        // A stray PGSERVICE/PGDATABASE of the caller's shell must not point the tool elsewhere.
        foreach (var name in new[] { "PGSERVICE", "PGSERVICEFILE", "PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGOPTIONS", "PGTARGETSESSIONATTRS" })
        {
            start.Environment.Remove(name);
        }

        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[key] = value;
        }

        try
        {
            return Process.Start(start) ?? throw new BackupFailedException($"Could not start {file}.");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new BackupFailedException($"Could not start {file}: {e.Message}", e);
        }
    }

    /// <summary>Runs a tool to the end; its stdout and stderr together, trimmed to the last lines that matter.</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(
        string file, IEnumerable<string> args, IDictionary<string, string>? environment, CancellationToken cancellationToken)
    {
        using var process = Start(file, args, environment);
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        await WaitAsync(process, cancellationToken);
        return (process.ExitCode, Tail((await stdout) + (await stderr)));
    }

    /// <summary>Waits for exit; on cancellation the tool is killed, not left running against the database.</summary>
    public static async Task WaitAsync(Process process, CancellationToken cancellationToken)
    {
        try
        {
            await process.WaitForExitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
            throw;
        }
    }

    /// <summary>The last lines of a tool's output: where pg_dump and psql say what went wrong.</summary>
    public static string Tail(string output, int lines = 8)
    {
        var all = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return string.Join(" | ", all.TakeLast(lines));
    }

    [GeneratedRegex(@"\b(\d+)(?:\.\d+)+")]
    private static partial Regex VersionPattern();
}
