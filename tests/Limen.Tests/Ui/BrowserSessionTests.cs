using System.Net;
using System.Net.Http.Json;
using Limen.Tests.Infrastructure;
using Microsoft.Playwright;

namespace Limen.Tests.Ui;

/// <summary>Signing in with the browser: the session cookie, where it leads, how it ends, what it allows against the API.</summary>
public sealed class BrowserSessionTests(UiBrowser browser) : IClassFixture<UiBrowser>
{
    [Fact]
    public async Task A_page_before_sign_in_leads_to_the_sign_in_page_and_back_to_that_page_after_it()
    {
        await using var server = await LimenTestServer.StartAsync();
        await server.CreateUserAsync("ui-return");
        await using var ui = await UiSession.OpenAsync(browser.Browser, server);

        var response = await ui.Page.GotoAsync(ui.Url("/?from=bookmark"));
        Assert.Equal(200, response!.Status);
        Assert.Equal("/signin", new Uri(ui.Page.Url).AbsolutePath);
        Assert.Equal("/?from=bookmark", Uri.UnescapeDataString(new Uri(ui.Page.Url).Query.Split('=', 2)[1]));
        await ui.AssertAccessibleAsync();
        await ui.ScreenshotAsync("signin");

        await ui.SignInHereAsync("ui-return");
        await ui.Page.WaitForURLAsync(ui.Url("/?from=bookmark"));
        Assert.Equal("ui-return", await ui.Page.TextContentAsync("#dashboard-user"));
    }

    [Fact]
    public async Task The_session_is_an_http_only_strict_cookie_and_no_token_reaches_page_storage()
    {
        await using var server = await LimenTestServer.StartAsync();
        await server.CreateUserAsync("ui-cookie");
        await using var ui = await UiSession.SignInAsync(browser.Browser, server, "ui-cookie");

        var session = Assert.Single(await ui.Context.CookiesAsync(), c => c.Name == "limen_session");
        Assert.True(session.HttpOnly);
        Assert.Equal(SameSiteAttribute.Strict, session.SameSite);
        Assert.Equal("", await ui.Page.EvaluateAsync<string>("() => document.cookie.includes('limen_session') ? 'visible' : ''"));
        Assert.Equal(0, await ui.Page.EvaluateAsync<int>("() => localStorage.length + sessionStorage.length"));
        await ui.AssertAccessibleAsync();
    }

    [Fact]
    public async Task A_wrong_password_is_told_on_the_page_and_signs_nobody_in()
    {
        await using var server = await LimenTestServer.StartAsync();
        await server.CreateUserAsync("ui-wrong");
        await using var ui = await UiSession.OpenAsync(browser.Browser, server);
        await ui.Page.GotoAsync(ui.Url("/signin"));

        await ui.SignInHereAsync("ui-wrong", "not the password at all");
        await ui.Page.WaitForSelectorAsync("#signin-problem");
        Assert.Equal("Invalid username or password.", await ui.Page.TextContentAsync("#signin-problem"));
        Assert.DoesNotContain(await ui.Context.CookiesAsync(), c => c.Name == "limen_session");
        Assert.Equal(1, await server.Database.ScalarAsync(
            "SELECT count(*) FROM audit_logs WHERE action = 'auth.login' AND result = 'failure' AND username = 'ui-wrong'"));
    }

    [Fact]
    public async Task An_api_call_on_the_session_cookie_needs_the_pages_anti_forgery_header_for_a_change()
    {
        await using var server = await LimenTestServer.StartAsync();
        await server.CreateUserAsync("ui-csrf");
        await using var ui = await UiSession.SignInAsync(browser.Browser, server, "ui-csrf");
        var missing = Guid.NewGuid();

        var me = await ui.Page.EvaluateAsync<string>("async () => (await (await fetch('/api/auth/me')).json()).username");
        Assert.Equal("ui-csrf", me);
        var bare = await ui.Page.EvaluateAsync<string>(
            $"async () => {{ const r = await fetch('/api/vms/{missing}/actions/start', {{ method: 'POST' }}); return r.status + ' ' + (await r.json()).title; }}");
        Assert.Equal("400 Anti-forgery check failed", bare);
        var withHeader = await ui.Page.EvaluateAsync<string>(
            $"async () => {{ const {{ api }} = await import('/js/api.js'); const r = await api('POST', '/api/vms/{missing}/actions/start'); return String(r.status); }}");
        Assert.Equal("404", withHeader);
    }

    [Fact]
    public async Task Signing_out_ends_the_session_and_a_lost_cookie_returns_through_sign_in_to_the_same_page()
    {
        await using var server = await LimenTestServer.StartAsync();
        await server.CreateUserAsync("ui-out");
        await using var ui = await UiSession.SignInAsync(browser.Browser, server, "ui-out");

        // The cookie is gone as after expiry: the next page goes through sign-in and comes back.
        await ui.Context.ClearCookiesAsync(new BrowserContextClearCookiesOptions { Name = "limen_session" });
        await ui.Page.GotoAsync(ui.Url("/?after=expiry"));
        Assert.Equal("/signin", new Uri(ui.Page.Url).AbsolutePath);
        await ui.SignInHereAsync("ui-out");
        await ui.Page.WaitForURLAsync(ui.Url("/?after=expiry"));

        await ui.Page.ClickAsync("header form button[type=submit]");
        await ui.Page.WaitForURLAsync(url => new Uri(url).AbsolutePath == "/signin");
        Assert.DoesNotContain(await ui.Context.CookiesAsync(), c => c.Name == "limen_session");
        await ui.Page.GotoAsync(ui.Url("/"));
        Assert.Equal("/signin", new Uri(ui.Page.Url).AbsolutePath);
        Assert.Equal(1, await server.Database.ScalarAsync(
            "SELECT count(*) FROM audit_logs a JOIN users u ON u.id = a.user_id WHERE a.action = 'auth.logout' AND u.username = 'ui-out'"));
    }

    [Fact]
    public async Task Disabling_the_account_or_changing_its_password_ends_its_browser_sessions_on_the_next_page()
    {
        await using var server = await LimenTestServer.StartAsync();
        var (id, token) = await server.CreateUserAsync("ui-ended");
        await using var disabled = await UiSession.SignInAsync(browser.Browser, server, "ui-ended");
        await using var repassworded = await UiSession.SignInAsync(browser.Browser, server, "ui-ended");

        using var owner = server.Client(token);
        Assert.Equal(HttpStatusCode.NoContent, (await owner.PostAsJsonAsync("/api/auth/me/password",
            new { current_password = UiSession.Password, new_password = "another long password" })).StatusCode);
        await repassworded.Page.GotoAsync(repassworded.Url("/"));
        Assert.Equal("/signin", new Uri(repassworded.Page.Url).AbsolutePath);

        await using var fresh = await UiSession.SignInAsync(browser.Browser, server, "ui-ended", "another long password");
        using var admin = server.Client(await server.AdminTokenAsync());
        Assert.Equal(HttpStatusCode.OK, (await admin.PatchAsJsonAsync($"/api/admin/users/{id}", new { disabled = true })).StatusCode);
        await fresh.Page.GotoAsync(fresh.Url("/"));
        Assert.Equal("/signin", new Uri(fresh.Page.Url).AbsolutePath);
        await disabled.Page.GotoAsync(disabled.Url("/"));
        Assert.Equal("/signin", new Uri(disabled.Page.Url).AbsolutePath);
    }

    [Fact]
    public async Task The_pages_fit_a_phone_and_pass_axe_there()
    {
        await using var server = await LimenTestServer.StartAsync();
        await server.CreateUserAsync("ui-phone");
        await using var ui = await UiSession.SignInAsync(browser.Browser, server, "ui-phone", viewport: UiSession.Phone);

        Assert.True(await ui.Page.EvaluateAsync<bool>("() => document.documentElement.scrollWidth <= window.innerWidth"),
            "the dashboard scrolls sideways at 390 px");
        await ui.AssertAccessibleAsync();
        await ui.ScreenshotAsync("dashboard-phone");
    }
}
