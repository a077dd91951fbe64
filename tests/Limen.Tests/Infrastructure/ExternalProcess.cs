using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Limen.Tests.Infrastructure;

/// <summary>A real program the test starts (Prometheus, Alertmanager, the limen binary); killed with its children on dispose.</summary>
public sealed class ExternalProcess : IAsyncDisposable
{
    private const int KeptLines = 200;
    private readonly Process process;
    private readonly ConcurrentQueue<string> output = new();

    private ExternalProcess(Process process)
    {
        this.process = process;
    }

    public int Id => process.Id;
    public bool HasExited => process.HasExited;
    public int ExitCode => process.ExitCode;

    /// <summary>The last lines it wrote to stdout and stderr, for failure messages.</summary>
    public string Output => string.Join('\n', output);

    public static ExternalProcess Start(string fileName, params string[] args) => Start(new Dictionary<string, string?>(), fileName, args);

    /// <param name="environment">Variables to set (a null value removes one inherited from the test process).</param>
    public static ExternalProcess Start(IReadOnlyDictionary<string, string?> environment, string fileName, params string[] args)
    {
        var start = new ProcessStartInfo(fileName) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        foreach (var (name, value) in environment)
        {
            if (value is null)
            {
                start.Environment.Remove(name);
            }
            else
            {
                start.Environment[name] = value;
            }
        }

        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"{fileName} is not installed ({e.Message}); run ./test.sh, which installs it.", e);
        }

        var started = new ExternalProcess(process);
        process.OutputDataReceived += (_, line) => started.Keep(line.Data);
        process.ErrorDataReceived += (_, line) => started.Keep(line.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return started;
    }

    /// <summary>Runs a command to completion; fails the test with its output unless it exits 0.</summary>
    public static async Task<string> RunAsync(string fileName, params string[] args)
    {
        await using var run = Start(fileName, args);
        var exitCode = await run.WaitForExitAsync(TimeSpan.FromMinutes(5));
        Assert.True(exitCode == 0, $"{fileName} {string.Join(' ', args)} exited {exitCode}:\n{run.Output}");
        return run.Output;
    }

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        await process.WaitForExitAsync(cancel.Token);
        // Let the asynchronous readers deliver the last lines.
        process.WaitForExit();
        return process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
        }

        await process.WaitForExitAsync();
        process.Dispose();
    }

    private void Keep(string? line)
    {
        if (line is null)
        {
            return;
        }

        output.Enqueue(line);
        while (output.Count > KeptLines && output.TryDequeue(out _))
        {
        }
    }
}

public static class Ports
{
    /// <summary>A loopback port nobody listens on right now.</summary>
    public static int Free()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

public static class Eventually
{
    /// <summary>Polls <paramref name="condition"/> until it holds; fails naming <paramref name="what"/> after <paramref name="timeout"/>.</summary>
    public static async Task WaitAsync(Func<Task<bool>> condition, TimeSpan timeout, string what, Func<string>? diagnostics = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            try
            {
                if (await condition())
                {
                    return;
                }
            }
            catch (HttpRequestException) when (DateTime.UtcNow < deadline)
            {
                // not listening yet
            }

            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"Timed out after {timeout.TotalSeconds:0} s waiting for {what}.{(diagnostics is null ? "" : "\n" + diagnostics())}");
            }

            await Task.Delay(200);
        }
    }
}
