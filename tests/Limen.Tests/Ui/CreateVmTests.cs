using System.Net;
using System.Net.Http.Json;
using System.Text.RegularExpressions;
using Limen.Tests.Infrastructure;
using Microsoft.Playwright;

namespace Limen.Tests.Ui;

/// <summary>The create page (/vms/new): the form, its problems beside their fields, the quota explained before sending.</summary>
public sealed partial class CreateVmTests(UiBrowser browser) : IClassFixture<UiBrowser>
{
    [GeneratedRegex(@"/vms/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    internal static partial Regex DetailUrl();

    [Fact]
    public async Task Creating_through_the_form_lands_on_the_vm_page_with_focus_on_its_heading()
    {
        await using var server = await LimenTestServer.StartAsync();
        var (userId, _) = await server.CreateUserAsync("ui-creator");
        var image = await VmTestKit.RegisterBlankImageAsync(server, "base-disk");
        await using var ui = await UiSession.SignInAsync(browser.Browser, server, "ui-creator");

        await ui.Page.GotoAsync(ui.Url("/vms/new"));
        Assert.Contains("10 of 10 VMs left", await ui.Page.TextContentAsync("#quota-left"));
        Assert.Contains("16 of 16 vCPUs left", await ui.Page.TextContentAsync("#quota-left"));
        await ui.AssertAccessibleAsync();
        await ui.Page.SelectOptionAsync("#image_id", image.ToString());
        await ui.Page.FillAsync("#name", "web-1");
        await ui.Page.FillAsync("#vcpus", "2");
        await ui.Page.FillAsync("#memory_mb", "256");
        await ui.Page.FillAsync("#disk_gb", "3");
        await ui.ScreenshotAsync("create");
        await ui.Page.ClickAsync("#create-submit");

        await ui.Page.WaitForURLAsync(DetailUrl());
        var vmId = Guid.Parse(new Uri(ui.Page.Url).AbsolutePath.Split('/')[^1]);
        Assert.Equal("web-1", await ui.Page.TextContentAsync("h1"));
        await ui.Page.WaitForFunctionAsync("() => document.activeElement?.tagName === 'H1'");
        Assert.Equal(1, await server.Database.ScalarAsync(
            $"SELECT count(*) FROM vms WHERE id = '{vmId}' AND owner_id = '{userId}' AND vcpus = 2 AND memory_mb = 256 AND disk_gb = 3 AND state = 'stopped'"));
        Assert.True(VmTestKit.DomainExists(server, vmId));
    }

    [Fact]
    public async Task Problems_show_beside_their_fields_and_create_nothing()
    {
        await using var server = await LimenTestServer.StartAsync();
        var (userId, token) = await server.CreateUserAsync("ui-mistaken");
        var image = await VmTestKit.RegisterBlankImageAsync(server, "base-disk");
        using (var client = server.Client(token))
        {
            await VmTestKit.CreateVmAsync(client, image, "taken");
        }

        await using var ui = await UiSession.SignInAsync(browser.Browser, server, "ui-mistaken");
        await ui.Page.GotoAsync(ui.Url("/vms/new"));
        await ui.Page.FillAsync("#name", "-not a name");
        var refused = await ui.Page.RunAndWaitForResponseAsync(() => ui.Page.ClickAsync("#create-submit"),
            r => r.Request.Method == "POST" && new Uri(r.Url).AbsolutePath == "/vms/new");
        Assert.Equal(400, refused.Status);
        await ui.Page.WaitForSelectorAsync("#problem-name");
        Assert.StartsWith("name must be 1 to 63 characters", await ui.Page.TextContentAsync("#problem-name"));
        Assert.Equal("true", await ui.Page.GetAttributeAsync("#name", "aria-invalid"));
        Assert.Equal("problem-name", await ui.Page.GetAttributeAsync("#name", "aria-describedby"));
        Assert.Equal("-not a name", await ui.Page.InputValueAsync("#name"));
        await ui.AssertAccessibleAsync();

        await ui.Page.FillAsync("#name", "taken");
        await ui.Page.FillAsync("#memory_mb", "128");
        refused = await ui.Page.RunAndWaitForResponseAsync(() => ui.Page.ClickAsync("#create-submit"),
            r => r.Request.Method == "POST" && new Uri(r.Url).AbsolutePath == "/vms/new");
        Assert.Equal(409, refused.Status);
        await ui.Page.WaitForFunctionAsync("() => document.querySelector('#problem-name')?.textContent.includes('already have')");
        Assert.Equal("You already have a VM named 'taken'.", await ui.Page.TextContentAsync("#problem-name"));

        await ui.Page.FillAsync("#name", "fine");
        await ui.Page.FillAsync("#vcpus", "0");
        await ui.Page.ClickAsync("#create-submit");
        await ui.Page.WaitForSelectorAsync("#problem-vcpus");
        Assert.Equal(0, await ui.Page.Locator("#problem-name").CountAsync());
        Assert.Equal("true", await ui.Page.GetAttributeAsync("#vcpus", "aria-invalid"));
        Assert.Equal(1, await server.Database.ScalarAsync($"SELECT count(*) FROM vms WHERE owner_id = '{userId}'"));
    }

    [Fact]
    public async Task A_create_past_the_quota_is_explained_before_it_is_sent_and_refused_by_the_server_all_the_same()
    {
        await using var server = await LimenTestServer.StartAsync();
        var (userId, _) = await server.CreateUserAsync("ui-frugal");
        var image = await VmTestKit.RegisterBlankImageAsync(server, "base-disk");
        using (var admin = server.Client(await server.AdminTokenAsync()))
        {
            Assert.Equal(HttpStatusCode.OK, (await admin.PutAsJsonAsync($"/api/admin/users/{userId}/quota", new { max_vcpus = 2 })).StatusCode);
        }

        await using var ui = await UiSession.SignInAsync(browser.Browser, server, "ui-frugal");
        await ui.Page.GotoAsync(ui.Url("/vms/new"));
        Assert.Contains("2 of 2 vCPUs left", await ui.Page.TextContentAsync("#quota-left"));
        var posts = 0;
        ui.Page.Request += (_, request) =>
        {
            if (request.Method == "POST")
            {
                Interlocked.Increment(ref posts);
            }
        };

        await ui.Page.SelectOptionAsync("#image_id", image.ToString());
        await ui.Page.FillAsync("#name", "too-big");
        await ui.Page.FillAsync("#vcpus", "4");
        Assert.Equal("This needs 4 vCPUs; 2 are left", await ui.Page.TextContentAsync("#quota-check"));
        Assert.True(await ui.Page.IsDisabledAsync("#create-submit"));
        // Neither the button nor Enter in a field sends it.
        await ui.Page.ClickAsync("#create-submit", new PageClickOptions { Force = true });
        await ui.Page.FocusAsync("#name");
        await ui.Page.Keyboard.PressAsync("Enter");
        await ui.Page.WaitForTimeoutAsync(500);
        Assert.Equal(0, posts);
        Assert.Equal("/vms/new", new Uri(ui.Page.Url).AbsolutePath);
        Assert.Equal(0, await server.Database.ScalarAsync($"SELECT count(*) FROM audit_logs WHERE action = 'quota.denied' AND target_id = '{userId}'"));

        await ui.Page.FillAsync("#vcpus", "2");
        Assert.Equal("", await ui.Page.TextContentAsync("#quota-check"));
        Assert.False(await ui.Page.IsDisabledAsync("#create-submit"));

        // What a browser without scripts would send: the server refuses it with the quota problem.
        await ui.Page.FillAsync("#vcpus", "4");
        await ui.Page.EvaluateAsync("() => document.querySelector('#create-submit').disabled = false");
        var refused = await ui.Page.RunAndWaitForResponseAsync(() => ui.Page.ClickAsync("#create-submit"),
            r => r.Request.Method == "POST" && new Uri(r.Url).AbsolutePath == "/vms/new");
        Assert.Equal(403, refused.Status);
        await ui.Page.WaitForFunctionAsync("() => [...document.querySelectorAll('.problem[role=alert]')].some(p => p.textContent.includes('more vcpus'))");
        Assert.Equal(1, await server.Database.ScalarAsync($"SELECT count(*) FROM audit_logs WHERE action = 'quota.denied' AND target_id = '{userId}'"));
        Assert.Equal(0, await server.Database.ScalarAsync($"SELECT count(*) FROM vms WHERE owner_id = '{userId}'"));
    }

    [Fact]
    public async Task A_vm_is_created_and_started_with_the_keyboard_alone()
    {
        await using var server = await LimenTestServer.StartAsync();
        var (userId, _) = await server.CreateUserAsync("ui-keys");
        await VmTestKit.RegisterBlankImageAsync(server, "base-disk");
        await using var ui = await UiSession.SignInAsync(browser.Browser, server, "ui-keys");
        await ui.Page.GotoAsync(ui.Url("/vms/new"));

        await TabToAsync(ui.Page, "name");
        await ui.Page.Keyboard.TypeAsync("by-keys");
        await TabToAsync(ui.Page, "memory_mb");
        await ui.Page.Keyboard.PressAsync("Control+A");
        await ui.Page.Keyboard.TypeAsync("128");
        await TabToAsync(ui.Page, "disk_gb");
        await ui.Page.Keyboard.PressAsync("Control+A");
        await ui.Page.Keyboard.TypeAsync("1");
        await TabToAsync(ui.Page, "create-submit");
        await ui.Page.Keyboard.PressAsync("Enter");

        await ui.Page.WaitForURLAsync(DetailUrl());
        await ui.Page.WaitForFunctionAsync("() => document.activeElement?.tagName === 'H1'");
        await TabToAsync(ui.Page, "action-start");
        await ui.Page.Keyboard.PressAsync("Space");
        await ui.Page.WaitForSelectorAsync("#vm-state[data-state=running]");
        Assert.Equal(1, await server.Database.ScalarAsync($"SELECT count(*) FROM vms WHERE owner_id = '{userId}' AND name = 'by-keys' AND state = 'running'"));
    }

    [Fact]
    public async Task The_create_page_fits_a_phone_and_passes_axe_there()
    {
        await using var server = await LimenTestServer.StartAsync();
        await server.CreateUserAsync("ui-create-phone");
        await VmTestKit.RegisterBlankImageAsync(server, "base-disk");
        await using var ui = await UiSession.SignInAsync(browser.Browser, server, "ui-create-phone", viewport: UiSession.Phone);
        await ui.Page.GotoAsync(ui.Url("/vms/new"));

        Assert.True(await ui.Page.EvaluateAsync<bool>("() => document.documentElement.scrollWidth <= window.innerWidth"),
            "the create page scrolls sideways at 390 px");
        await ui.AssertAccessibleAsync();
    }

    /// <summary>Presses Tab (only Tab) until the element with <paramref name="id"/> has the focus.</summary>
    internal static async Task TabToAsync(IPage page, string id)
    {
        for (var i = 0; i < 60; i++)
        {
            if (await page.EvaluateAsync<string?>("() => document.activeElement?.id") == id)
            {
                return;
            }

            await page.Keyboard.PressAsync("Tab");
        }

        Assert.Fail($"Tab never reached #{id}");
    }
}
