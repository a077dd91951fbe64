using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Limen.Tests.Infrastructure;

/// <summary>The real `limen` executable (the build's limen.dll) run as a child process.</summary>
public sealed class LimenProcess : IDisposable
{
    private readonly Process process;
    private readonly ConcurrentQueue<string> stdout = new();

    private LimenProcess(Process process)
    {
        this.process = process;
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) { stdout.Enqueue(e.Data); } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { stdout.Enqueue(e.Data); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public IReadOnlyCollection<string> Output => stdout;
    public bool HasExited => process.HasExited;
    public int ExitCode => process.ExitCode;
    public int Id => process.Id;

    /// <summary>limen.dll in its own build output (same configuration as the tests), with its own deps.json.</summary>
    public static string Dll { get; } = Path.Combine(RepoPaths.Root, "src", "Limen", "bin",
        new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/')).Parent!.Name, "net10.0", "limen.dll");

    public static LimenProcess Start(IDictionary<string, string> environment, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        start.ArgumentList.Add(Dll);
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        foreach (var name in new[] { "LIMEN_URLS", "LIMEN_STATE_DIR", "LIMEN_ADMIN_PASSWORD", "DATABASE_URL" })
        {
            start.Environment.Remove(name);
        }

        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }

        return new LimenProcess(Process.Start(start)!);
    }

    /// <summary>Runs a one-shot command to completion and returns its exit code and output.</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(IDictionary<string, string> environment, params string[] args)
    {
        using var run = Start(environment, args);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await run.process.WaitForExitAsync(timeout.Token);
        run.process.WaitForExit(); // drains the asynchronous readers
        return (run.ExitCode, string.Join('\n', run.Output));
    }

    public async Task WaitForOutputAsync(Func<string, bool> match, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!stdout.Any(match))
        {
            if (DateTime.UtcNow > deadline || process.HasExited)
            {
                throw new TimeoutException("Expected output never came. Output so far:\n" + string.Join('\n', stdout));
            }

            await Task.Delay(100);
        }
    }

    public void Signal(int signal) => _ = kill(process.Id, signal);

    public async Task<bool> WaitForExitAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cancel.Token);
            process.WaitForExit();
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    public void Dispose()
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
        }

        process.Dispose();
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);
}
