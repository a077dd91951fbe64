namespace Limen.Tests.Infrastructure;

/// <summary>One server (and database) shared by the tests of a class.</summary>
public sealed class ServerFixture : IAsyncLifetime
{
    private LimenTestServer? server;

    public LimenTestServer Server => server ?? throw new InvalidOperationException("not started");

    public async Task InitializeAsync() => server = await LimenTestServer.StartAsync();

    public async Task DisposeAsync()
    {
        if (server is not null)
        {
            await server.DisposeAsync();
        }
    }
}
