using System.Net;
using System.Net.Http.Json;
using Limen.Tests.Infrastructure;

namespace Limen.Tests.Ui;

/// <summary>The dashboard: my machines by state, my quota as bars that follow changes live, health.</summary>
public sealed class DashboardTests(UiBrowser browser) : IClassFixture<UiBrowser>
{
    [Fact]
    public async Task The_dashboard_shows_my_counts_by_state_and_my_quota_and_a_quota_change_arrives_without_a_reload()
    {
        await using var server = await LimenTestServer.StartAsync();
        var (id, token) = await server.CreateUserAsync("ui-dash");
        var (_, otherToken) = await server.CreateUserAsync("ui-dash-other");
        var image = await VmTestKit.RegisterBlankImageAsync(server);
        using var client = server.Client(token);
        using var other = server.Client(otherToken);
        using var admin = server.Client(await server.AdminTokenAsync());
        await VmTestKit.CreateVmAsync(client, image, "dash-run", start: true, vcpus: 2, memoryMb: 256);
        await VmTestKit.CreateVmAsync(client, image, "dash-stop", memoryMb: 128);
        // Another user's machine counts for nobody's dashboard but theirs.
        await VmTestKit.CreateVmAsync(other, image, "dash-theirs", start: true);
        Assert.Equal(HttpStatusCode.OK, (await admin.PutAsJsonAsync($"/api/admin/users/{id}/quota", new { max_vms = 4 })).StatusCode);

        await using var ui = await UiSession.SignInAsync(browser.Browser, server, "ui-dash");
        Assert.Equal("ui-dash", await ui.Page.TextContentAsync("#dashboard-user"));
        Assert.Equal("2 machines", await ui.Page.TextContentAsync("#vm-total"));
        Assert.Equal("1", await ui.Page.TextContentAsync("[data-count=running]"));
        Assert.Equal("1", await ui.Page.TextContentAsync("[data-count=stopped]"));
        Assert.Equal("2 / 4", await ui.Page.TextContentAsync("#quota-vms-text"));
        Assert.Equal("3 / 16", await ui.Page.TextContentAsync("#quota-vcpus-text"));
        Assert.Equal("384 / 32768 MiB", await ui.Page.TextContentAsync("#quota-memory-text"));
        Assert.Equal("2", await ui.Page.GetAttributeAsync("#quota-vms", "value"));
        Assert.Equal("4", await ui.Page.GetAttributeAsync("#quota-vms", "max"));
        Assert.Equal("connected", await ui.Page.TextContentAsync("[data-health=database] .badge"));
        Assert.Equal("connected", await ui.Page.TextContentAsync("[data-health^=host-] .badge"));
        Assert.Equal(0, await ui.Page.Locator("#alerts-firing").CountAsync());

        // A mark on the window: it survives an in-place update and is gone after a reload.
        await ui.Page.EvaluateAsync("() => { window.notReloaded = true; }");
        await ui.Page.WaitForFunctionAsync("() => document.documentElement.dataset.live === 'connected'");
        Assert.Equal(HttpStatusCode.OK, (await admin.PutAsJsonAsync($"/api/admin/users/{id}/quota", new { max_vms = 7 })).StatusCode);
        await ui.Page.WaitForFunctionAsync("() => document.getElementById('quota-vms-text').textContent === '2 / 7'");
        Assert.Equal("7", await ui.Page.GetAttributeAsync("#quota-vms", "max"));

        // A new machine of mine moves the count and the bar too.
        await VmTestKit.CreateVmAsync(client, image, "dash-new");
        await ui.Page.WaitForFunctionAsync("() => document.getElementById('quota-vms-text').textContent === '3 / 7'");
        Assert.Equal("2", await ui.Page.TextContentAsync("[data-count=stopped]"));
        Assert.True(await ui.Page.EvaluateAsync<bool>("() => window.notReloaded === true"), "the dashboard reloaded instead of updating in place");

        await ui.AssertAccessibleAsync();
        await ui.ScreenshotAsync("dashboard");
    }

    [Fact]
    public async Task An_admin_sees_the_firing_alerts_and_the_page_passes_axe_on_a_phone()
    {
        await using var server = await LimenTestServer.StartAsync();
        await server.CreateUserAsync("ui-dash-admin", "admin");
        await server.Database.ScalarAsync("""
            INSERT INTO alerts (fingerprint, starts_at, status, alertname, receiver, labels, annotations, first_received_at, last_received_at, count)
            VALUES ('f1', now(), 'firing', 'HostDiskFull', 'critical', '{}', '{}', now(), now(), 1),
                   ('f2', now(), 'resolved', 'LibvirtDown', 'critical', '{}', '{}', now(), now(), 1)
            RETURNING 1
            """);

        await using var ui = await UiSession.SignInAsync(browser.Browser, server, "ui-dash-admin", viewport: UiSession.Phone);
        Assert.Equal("1 firing", await ui.Page.TextContentAsync("#alerts-firing"));
        Assert.Equal("/admin/alerts", await ui.Page.GetAttributeAsync("#alerts-firing", "href"));
        Assert.Contains("HostDiskFull", await ui.Page.TextContentAsync(".alerts"));
        Assert.DoesNotContain("LibvirtDown", await ui.Page.TextContentAsync(".alerts"));
        Assert.True(await ui.Page.EvaluateAsync<bool>("() => document.documentElement.scrollWidth <= window.innerWidth"),
            "the dashboard scrolls sideways at 390 px");
        await ui.AssertAccessibleAsync();
        await ui.ScreenshotAsync("dashboard-admin-phone");
    }
}
