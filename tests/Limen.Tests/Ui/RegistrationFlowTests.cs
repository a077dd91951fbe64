using Limen.Features.Registration;
using Limen.Tests.Infrastructure;
using Microsoft.Playwright;

namespace Limen.Tests.Ui;

/// <summary>Self-registration in the browser: the admin's switch, the newcomer's form, the wait, the approval.</summary>
[Collection(UiCollection.Name)]
public sealed class RegistrationFlowTests(UiBrowser browser)
{
    [Fact]
    public async Task Admin_opens_registration_a_newcomer_registers_waits_is_approved_and_signs_in()
    {
        await using var server = await LimenTestServer.StartAsync();
        await using var admin = await UiSession.SignInAsync(browser.Browser, server, "admin", server.AdminPassword);
        await admin.Page.GotoAsync(admin.Url("/admin/registrations"));
        // From here on the admin's page follows the event stream: the registration must appear
        // without a reload. (Checked now: the enhanced page updates below re-sync <html>'s attributes.)
        await admin.Page.WaitForFunctionAsync("() => document.documentElement.dataset.live === 'connected'");
        var toggle = admin.Page.GetByRole(AriaRole.Switch, new() { Name = "Registration open" });
        Assert.Equal("false", await toggle.GetAttributeAsync("aria-checked"));
        await toggle.ClickAsync();
        await admin.Page.WaitForSelectorAsync("#registration-open[aria-checked='true']");
        Assert.Equal(1, await server.Database.ScalarAsync("SELECT count(*) FROM system_settings WHERE registration_open"));
        Assert.Equal(1, await server.Database.ScalarAsync("SELECT count(*) FROM audit_logs WHERE action = 'settings.change' AND username = 'admin'"));
        Assert.Equal("No registration is waiting.", await admin.Page.TextContentAsync("#no-registrations"));

        await using var newcomer = await UiSession.OpenAsync(browser.Browser, server);
        await newcomer.Page.GotoAsync(newcomer.Url("/signin"));
        await newcomer.Page.ClickAsync("a[href='/register']");
        await newcomer.Page.WaitForURLAsync(newcomer.Url("/register"));
        await newcomer.AssertAccessibleAsync();
        await newcomer.ScreenshotAsync("register");
        await newcomer.Page.FillAsync("#username", "ui-newcomer");
        await newcomer.Page.FillAsync("#password", UiSession.Password);
        await newcomer.Page.ClickAsync("form button[type=submit]");
        await newcomer.Page.WaitForSelectorAsync("#register-done");
        Assert.Contains(Registrations.PendingMessage, await newcomer.Page.TextContentAsync("#register-done"), StringComparison.Ordinal);
        await newcomer.AssertAccessibleAsync();

        await newcomer.Page.GotoAsync(newcomer.Url("/signin"));
        await newcomer.SignInHereAsync("ui-newcomer");
        await newcomer.Page.WaitForSelectorAsync("#signin-problem");
        Assert.Equal(Registrations.PendingMessage, await newcomer.Page.TextContentAsync("#signin-problem"));
        Assert.DoesNotContain(await newcomer.Context.CookiesAsync(), c => c.Name == "limen_session");

        var row = admin.Page.Locator("tr[data-registration='ui-newcomer']");
        await row.WaitForAsync();
        Assert.Equal("1", await admin.Page.TextContentAsync("#pending-total"));
        await admin.AssertAccessibleAsync();
        await admin.ScreenshotAsync("admin-registrations");
        await admin.Page.GetByRole(AriaRole.Button, new() { Name = "Approve ui-newcomer" }).ClickAsync();
        await admin.Page.WaitForSelectorAsync("#registration-notice");
        Assert.Equal("ui-newcomer is approved and can sign in now.", await admin.Page.TextContentAsync("#registration-notice"));
        Assert.Equal(0, await row.CountAsync());
        Assert.Equal(1, await server.Database.ScalarAsync("SELECT count(*) FROM audit_logs WHERE action = 'user.approve' AND username = 'admin'"));

        await newcomer.Page.GotoAsync(newcomer.Url("/signin"));
        await newcomer.SignInHereAsync("ui-newcomer");
        await newcomer.Page.WaitForURLAsync(newcomer.Url("/"));
        Assert.Equal("ui-newcomer", await newcomer.Page.TextContentAsync("#dashboard-user"));
    }

    [Fact]
    public async Task Rejecting_in_the_page_deletes_the_account()
    {
        await using var server = await LimenTestServer.StartAsync();
        await server.Database.ScalarAsync("UPDATE system_settings SET registration_open = true RETURNING 1");
        using var anonymous = server.Client();
        var registered = await anonymous.PostAsync("/api/auth/register",
            new StringContent("""{"username":"ui-unwanted","password":"correct horse battery"}""", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(System.Net.HttpStatusCode.Accepted, registered.StatusCode);

        await using var admin = await UiSession.SignInAsync(browser.Browser, server, "admin", server.AdminPassword);
        await admin.Page.GotoAsync(admin.Url("/admin/registrations"));
        await admin.Page.GetByRole(AriaRole.Button, new() { Name = "Reject ui-unwanted" }).ClickAsync();
        await admin.Page.WaitForSelectorAsync("#registration-notice");
        Assert.Equal("ui-unwanted's registration was rejected and the account deleted.", await admin.Page.TextContentAsync("#registration-notice"));
        Assert.Equal(0, await server.Database.ScalarAsync("SELECT count(*) FROM users WHERE username = 'ui-unwanted'"));
        Assert.Equal("No registration is waiting.", await admin.Page.TextContentAsync("#no-registrations"));
    }

    [Fact]
    public async Task With_registration_closed_the_page_says_so_and_sign_in_offers_no_way_there()
    {
        await using var server = await LimenTestServer.StartAsync();
        await using var visitor = await UiSession.OpenAsync(browser.Browser, server);
        await visitor.Page.GotoAsync(visitor.Url("/signin"));
        Assert.Equal(0, await visitor.Page.Locator("a[href='/register']").CountAsync());

        await visitor.Page.GotoAsync(visitor.Url("/register"));
        Assert.Contains("does not take registrations", await visitor.Page.TextContentAsync("#register-closed"), StringComparison.Ordinal);
        Assert.Equal(0, await visitor.Page.Locator("#username").CountAsync());
        await visitor.AssertAccessibleAsync();
        await visitor.Page.ClickAsync("a[href='/signin']");
        await visitor.Page.WaitForURLAsync(visitor.Url("/signin"));
    }
}
