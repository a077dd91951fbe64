using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Limen.Tests.Infrastructure;

/// <summary>Keeps formatted log lines (with exceptions) so tests can assert what operators would read.</summary>
public sealed class CollectingLoggerProvider : ILoggerProvider
{
    private readonly ConcurrentQueue<string> lines = new();
    private readonly ConcurrentQueue<(LogLevel Level, int EventId, string Message)> entries = new();

    public IReadOnlyCollection<string> Lines => lines;

    /// <summary>The same lines with their level and event id, for assertions on [LoggerMessage] logs.</summary>
    public IReadOnlyCollection<(LogLevel Level, int EventId, string Message)> Entries => entries;

    public ILogger CreateLogger(string categoryName) => new Collector(lines, entries);

    public void Dispose()
    {
    }

    private sealed class Collector(ConcurrentQueue<string> lines, ConcurrentQueue<(LogLevel, int, string)> entries) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lines.Enqueue($"{logLevel}: {formatter(state, exception)}{(exception is null ? "" : "\n" + exception)}");
            entries.Enqueue((logLevel, eventId.Id, formatter(state, exception)));
        }
    }
}
