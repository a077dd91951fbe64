using Limen.Hosting;

namespace Limen.Tests.Foundation;

/// <summary>Lines for a person on a terminal, JSON for files and collectors, or what the operator chose.</summary>
public sealed class LogFormatTests
{
    [Theory]
    [InlineData("auto", true, true)]
    [InlineData("auto", false, false)]
    [InlineData("AUTO", true, true)]
    [InlineData("text", false, true)]
    [InlineData("json", true, false)]
    public void The_log_is_readable_where_a_person_reads_it(string format, bool terminal, bool readable) =>
        Assert.Equal(readable, new LimenOptions { LogFormat = format }.ReadableLog(terminal));

    [Fact]
    public void An_unknown_format_stops_the_start_with_its_name() =>
        Assert.Contains("'yaml'", Assert.Throws<InvalidOperationException>(() => new LimenOptions { LogFormat = "yaml" }.ReadableLog(true)).Message);
}
