using Limen.Hosting;

namespace Limen.Tests.Cluster;

public sealed class ServerIdentityTests
{
    [Theory]
    [InlineData("srv-a", "http://127.0.0.1:18443", "box", "srv-a")]
    [InlineData("  srv-a ", "http://127.0.0.1:18443", "box", "srv-a")]
    [InlineData(null, "http://127.0.0.1:18443", "box", "box:18443")]
    [InlineData("", "http://127.0.0.1:9000/;http://[::1]:9001", "box", "box:9000")]
    [InlineData(null, "http://+:80", "box", "box:80")]
    [InlineData(null, "http://*:8080/", "box", "box:8080")]
    public void The_id_is_the_configured_one_else_host_name_and_listen_port(string? configured, string urls, string machine, string expected) =>
        Assert.Equal(expected, ServerIdentity.Resolve(configured, urls, machine));

    [Fact]
    public void A_server_on_a_port_the_system_picks_is_a_new_server_at_each_start()
    {
        var first = ServerIdentity.Resolve(null, "http://127.0.0.1:0", "box");
        var second = ServerIdentity.Resolve(null, "http://127.0.0.1:0", "box");
        Assert.StartsWith("box:0-", first, StringComparison.Ordinal);
        Assert.NotEqual(first, second);
    }

    [Fact]
    public void A_long_host_name_is_cut_so_that_the_id_fits_its_columns()
    {
        var id = ServerIdentity.Resolve(null, "http://127.0.0.1:18443", new string('h', 100));
        Assert.True(id.Length <= ServerIdentity.MaxLength, id);
        Assert.EndsWith(":18443", id, StringComparison.Ordinal);
    }

    [Fact]
    public void A_configured_id_longer_than_its_columns_fails_the_start() =>
        Assert.Throws<InvalidOperationException>(() => ServerIdentity.Resolve(new string('s', 65), "http://127.0.0.1:1", "box"));
}
