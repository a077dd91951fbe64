using System.Net;
using Limen.Features.Users;
using Limen.Tests.Infrastructure;
using Microsoft.Playwright;

namespace Limen.Tests.Ui;

/// <summary>The VM page (/vms/{id}): power actions, snapshots, delete by name, figures, and nothing of it for anybody else.</summary>
public sealed class VmDetailTests(UiBrowser browser) : IClassFixture<UiBrowser>
{
    /// <summary>A server with one user, an image and the user's VM "vm-{username}".</summary>
    private sealed record World(LimenTestServer Server, Guid UserId, HttpClient Client, Guid VmId) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            Client.Dispose();
            await Server.DisposeAsync();
        }
    }

    private static async Task<World> WorldAsync(string username, bool start = false)
    {
        var server = await LimenTestServer.StartAsync();
        try
        {
            var (userId, token) = await server.CreateUserAsync(username);
            var image = await VmTestKit.RegisterBlankImageAsync(server, "base-disk");
            var client = server.Client(token);
            var vm = await VmTestKit.CreateVmAsync(client, image, "vm-" + username, start: start);
            return new World(server, userId, client, vm.GetProperty("id").GetGuid());
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    [Fact]
    public async Task Power_actions_change_the_badge_in_place_and_a_change_made_elsewhere_shows_live()
    {
        await using var world = await WorldAsync("ui-power");
        var (server, _, client, vmId) = world;
        await using var ui = await UiSession.SignInAsync(browser.Browser, server, "ui-power");
        await ui.Page.GotoAsync(ui.Url($"/vms/{vmId}"));
        Assert.Equal("vm-ui-power", await ui.Page.TextContentAsync("h1"));
        Assert.Equal("stopped", await ui.Page.GetAttributeAsync("#vm-state", "data-state"));
        Assert.Equal($"/vms/{vmId}/console", await ui.Page.GetAttributeAsync("a:text('Open console')", "href"));
        // Only what the state allows is offered.
        Assert.Equal(0, await ui.Page.Locator("#action-suspend, #action-stop, #action-reboot").CountAsync());
        await ui.Page.EvaluateAsync("() => window.keptAcrossActions = true");

        await ui.Page.ClickAsync("#action-start");
        await ui.Page.WaitForSelectorAsync("#vm-state[data-state=running]");
        await SettleAsync(ui.Page);
        await ui.Page.ClickAsync("#action-suspend");
        await ui.Page.WaitForSelectorAsync("#vm-state[data-state=paused]");
        await SettleAsync(ui.Page);
        await ui.Page.ClickAsync("#action-resume");
        await ui.Page.WaitForSelectorAsync("#vm-state[data-state=running]");
        await SettleAsync(ui.Page);
        Assert.Equal(0, await ui.Page.Locator("#action-start").CountAsync());
        // Force stop asks first: its button is inside a closed disclosure until the user opens it.
        Assert.False(await ui.Page.IsVisibleAsync("#action-stop"));
        await ui.Page.ClickAsync("#confirm-stop");
        await ui.Page.ClickAsync("#action-stop");
        await ui.Page.WaitForSelectorAsync("#vm-state[data-state=stopped]");
        Assert.True(await ui.Page.EvaluateAsync<bool>("() => window.keptAcrossActions === true"), "an action reloaded the page");

        // Started through the API: the page hears of it on the event stream.
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync($"/api/vms/{vmId}/actions/start", null)).StatusCode);
        await ui.Page.WaitForSelectorAsync("#vm-state[data-state=running]");
        await ui.Page.WaitForSelectorAsync("limen-vm-stats figure[data-chart=cpu]");
        Assert.Equal(4, await ui.Page.Locator("limen-vm-stats figure").CountAsync());
        Assert.True(await ui.Page.EvaluateAsync<bool>("() => window.keptAcrossActions === true"));
        // Start, pause, resume and force stop on the page, start through the API.
        Assert.Equal(5, await server.Database.ScalarAsync(
            $"SELECT count(*) FROM audit_logs WHERE target_id = '{vmId}' AND result = 'success' AND action IN ('vm.start', 'vm.suspend', 'vm.resume', 'vm.stop')"));
        await ui.Page.WaitForSelectorAsync("#vm-audit td:text('vm.resume')");
        await ui.AssertAccessibleAsync();
        await ui.ScreenshotAsync("vm-detail");
    }

    [Fact]
    public async Task A_snapshot_is_taken_reverted_to_and_deleted_through_the_page()
    {
        await using var world = await WorldAsync("ui-snaps", start: true);
        var (server, _, client, vmId) = world;
        await using var ui = await UiSession.SignInAsync(browser.Browser, server, "ui-snaps");
        await ui.Page.GotoAsync(ui.Url($"/vms/{vmId}"));

        await ui.Page.FillAsync("#snapshot_name", "before-upgrade");
        await ui.Page.FillAsync("#snapshot_description", "all good here");
        await ui.Page.CheckAsync("#snapshot_memory");
        await ui.Page.ClickAsync("#snapshot-create");
        var row = ui.Page.Locator("tr[data-snapshot=before-upgrade]");
        await row.WaitForAsync();
        Assert.Contains("running, with memory", await row.TextContentAsync());
        Assert.Equal("running", await row.Locator("td[data-label='Revert leads to']").TextContentAsync());
        await SettleAsync(ui.Page);

        // A second snapshot with the same name: the problem is beside the name field.
        await ui.Page.FillAsync("#snapshot_name", "before-upgrade");
        await ui.Page.ClickAsync("#snapshot-create");
        await ui.Page.WaitForSelectorAsync("#problem-name");
        Assert.Equal("This VM already has a snapshot named 'before-upgrade'.", await ui.Page.TextContentAsync("#problem-name"));
        await SettleAsync(ui.Page);

        await ui.Page.ClickAsync("#confirm-stop");
        await ui.Page.ClickAsync("#action-stop");
        await ui.Page.WaitForSelectorAsync("#vm-state[data-state=stopped]");
        await SettleAsync(ui.Page);
        await row.Locator("summary:text('Revert…')").ClickAsync();
        Assert.Contains("the VM will be running", await row.TextContentAsync());
        await row.Locator("button:text('Revert now')").ClickAsync();
        await ui.Page.WaitForSelectorAsync("#vm-state[data-state=running]");
        Assert.Equal(1, await server.Database.ScalarAsync($"SELECT count(*) FROM vms WHERE id = '{vmId}' AND state = 'running'"));
        await SettleAsync(ui.Page);

        await row.Locator("summary:text('Delete…')").ClickAsync();
        await row.Locator("button:text('Delete now')").ClickAsync();
        await ui.Page.WaitForSelectorAsync("#no-snapshots");
        Assert.Equal(0, await server.Database.ScalarAsync($"SELECT count(*) FROM vm_snapshots WHERE vm_id = '{vmId}'"));
        foreach (var action in new[] { "snapshot.create", "snapshot.revert", "snapshot.delete" })
        {
            Assert.Equal(1, await server.Database.ScalarAsync(
                $"SELECT count(*) FROM audit_logs WHERE action = '{action}' AND result = 'success' AND target_id = '{vmId}'"));
        }
    }

    [Fact]
    public async Task Delete_needs_the_vms_name_typed_and_then_leaves_the_page()
    {
        await using var world = await WorldAsync("ui-deleter");
        var (server, userId, client, vmId) = world;
        await using var ui = await UiSession.SignInAsync(browser.Browser, server, "ui-deleter");
        await ui.Page.GotoAsync(ui.Url($"/vms/{vmId}"));

        await ui.Page.FillAsync("#confirm_name", "vm-ui-delete");
        var refused = await ui.Page.RunAndWaitForResponseAsync(() => ui.Page.ClickAsync("#vm-delete"),
            r => r.Request.Method == "POST" && new Uri(r.Url).AbsolutePath == $"/vms/{vmId}");
        Assert.Equal(400, refused.Status);
        await ui.Page.WaitForSelectorAsync("#problem-confirm_name");
        Assert.Equal("Type vm-ui-deleter exactly to delete this VM.", await ui.Page.TextContentAsync("#problem-confirm_name"));
        Assert.Equal("true", await ui.Page.GetAttributeAsync("#confirm_name", "aria-invalid"));
        Assert.Equal(1, await server.Database.ScalarAsync($"SELECT count(*) FROM vms WHERE id = '{vmId}'"));
        Assert.True(VmTestKit.DomainExists(server, vmId));

        await ui.Page.FillAsync("#confirm_name", "vm-ui-deleter");
        await ui.Page.ClickAsync("#vm-delete");
        await ui.Page.WaitForURLAsync(url => new Uri(url).AbsolutePath == "/vms");
        Assert.Equal(0, await server.Database.ScalarAsync($"SELECT count(*) FROM vms WHERE owner_id = '{userId}'"));
        Assert.False(VmTestKit.DomainExists(server, vmId));
    }

    [Fact]
    public async Task Another_users_vm_answers_like_an_id_of_nothing_and_an_admin_sees_it()
    {
        await using var world = await WorldAsync("ui-owner");
        var (server, _, client, vmId) = world;
        await server.CreateUserAsync("ui-stranger");
        await using var stranger = await UiSession.SignInAsync(browser.Browser, server, "ui-stranger");

        // The not-found answer of an id of nothing, word for word but for the request's own id.
        var theirs = await stranger.Page.GotoAsync(stranger.Url($"/vms/{vmId}"));
        Assert.Equal(404, theirs!.Status);
        var theirsBody = await theirs.TextAsync();
        var nothing = await stranger.Page.GotoAsync(stranger.Url($"/vms/{Guid.NewGuid()}"));
        Assert.Equal(404, nothing!.Status);
        Assert.Equal(nothing.Headers["content-type"], theirs.Headers["content-type"]);
        Assert.Equal(WithoutIds(await nothing.TextAsync()), WithoutIds(theirsBody));
        Assert.DoesNotContain("vm-ui-owner", theirsBody);
        Assert.DoesNotContain(vmId.ToString(), theirsBody);

        await using var admin = await UiSession.SignInAsync(browser.Browser, server, AdminBootstrap.Username, server.AdminPassword);
        var seen = await admin.Page.GotoAsync(admin.Url($"/vms/{vmId}"));
        Assert.Equal(200, seen!.Status);
        Assert.Equal("vm-ui-owner", await admin.Page.TextContentAsync("h1"));
    }

    private static string WithoutIds(string body) => System.Text.RegularExpressions.Regex.Replace(body,
        "\"(request_id|trace_id)\":\"[^\"]*\"", "");

    /// <summary>Lets the re-render that live.js makes after an event pass before the next click (a person is slower than 300 ms too).</summary>
    private static Task SettleAsync(IPage page) => page.WaitForTimeoutAsync(1500);

    [Fact]
    public async Task The_vm_page_fits_a_phone_and_passes_axe_there()
    {
        await using var world = await WorldAsync("ui-vm-phone", start: true);
        var (server, _, client, vmId) = world;
        await client.PostAsync($"/api/vms/{vmId}/snapshots", System.Net.Http.Json.JsonContent.Create(new { name = "nightly", description = "phone test" }));
        await using var ui = await UiSession.SignInAsync(browser.Browser, server, "ui-vm-phone", viewport: UiSession.Phone);
        await ui.Page.GotoAsync(ui.Url($"/vms/{vmId}"));
        await ui.Page.WaitForSelectorAsync("tr[data-snapshot=nightly]");
        await ui.Page.WaitForSelectorAsync("limen-vm-stats figure[data-chart=cpu]");

        Assert.True(await ui.Page.EvaluateAsync<bool>("() => document.documentElement.scrollWidth <= window.innerWidth"),
            "the VM page scrolls sideways at 390 px");
        await ui.AssertAccessibleAsync();
        await ui.ScreenshotAsync("vm-detail-phone");
    }
}
