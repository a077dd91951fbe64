using System.Net;
using Limen.Tests.Infrastructure;

namespace Limen.Tests.Ui;

/// <summary>The console page's access rules (the screen itself, against a real guest: RemoteConsole.ConsoleRealGuestTests).</summary>
public sealed class ConsolePageTests(UiBrowser browser) : IClassFixture<UiBrowser>
{
    [Fact]
    public async Task Another_users_console_url_is_a_404_like_an_id_of_nothing_and_gets_no_ticket()
    {
        await using var server = await LimenTestServer.StartAsync();
        var (_, token) = await server.CreateUserAsync("console-owner");
        await server.CreateUserAsync("console-stranger");
        using var owner = server.Client(token);
        var image = await VmTestKit.RegisterBlankImageAsync(server);
        var vm = (await VmTestKit.CreateVmAsync(owner, image, "owners-secret-box")).GetProperty("id").GetGuid();
        await using var ui = await UiSession.SignInAsync(browser.Browser, server, "console-stranger");

        // The ticket, asked from a page of the UI (cookie and anti-forgery header): refused as for a VM that does not exist.
        var ticket = await ui.Page.EvaluateAsync<string>(
            $"async () => {{ const {{ api }} = await import('/js/api.js'); const r = await api('POST', '/api/vms/{vm}/console'); return r.status + ' ' + await r.text(); }}");
        Assert.StartsWith("404 ", ticket, StringComparison.Ordinal);
        Assert.DoesNotContain("\"ticket\"", ticket, StringComparison.Ordinal);

        var theirs = await ui.Page.GotoAsync(ui.Url($"/vms/{vm}/console"));
        Assert.Equal((int)HttpStatusCode.NotFound, theirs!.Status);
        var body = await theirs.TextAsync();
        Assert.DoesNotContain("owners-secret-box", body, StringComparison.Ordinal);
        Assert.DoesNotContain("limen-console", body, StringComparison.Ordinal);
        var nothing = await ui.Page.GotoAsync(ui.Url($"/vms/{Guid.NewGuid()}/console"));
        Assert.Equal((int)HttpStatusCode.NotFound, nothing!.Status);
        Assert.Equal(theirs.Headers["content-type"], nothing.Headers["content-type"]);
        Assert.Contains("not-found", body, StringComparison.Ordinal);
        Assert.Equal(0, await server.Database.ScalarAsync($"SELECT count(*) FROM console_tickets WHERE vm_id = '{vm}'"));
    }
}
