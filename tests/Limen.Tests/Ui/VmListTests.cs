using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using Limen.Tests.Infrastructure;
using Microsoft.Playwright;

namespace Limen.Tests.Ui;

/// <summary>The machines list: only what the caller may see, search/filter/sort in the URL, live badges, bulk actions.</summary>
public sealed class VmListTests(UiBrowser browser) : IClassFixture<UiBrowser>
{
    [Fact]
    public async Task A_state_changed_behind_limens_back_shows_on_the_badge_within_a_second()
    {
        await using var server = await LimenTestServer.StartAsync();
        var (_, token) = await server.CreateUserAsync("ui-list-live");
        var image = await VmTestKit.RegisterBlankImageAsync(server);
        using var client = server.Client(token);
        var id = (await VmTestKit.CreateVmAsync(client, image, "live-one", start: true)).GetProperty("id").GetGuid();
        await using var ui = await UiSession.SignInAsync(browser.Browser, server, "ui-list-live");
        await ui.Page.GotoAsync(ui.Url("/vms"));
        var badge = $"[data-vm-state='{id}']";
        Assert.Equal("running", await ui.Page.GetAttributeAsync(badge, "data-state"));
        await ui.Page.WaitForFunctionAsync("() => document.documentElement.dataset.live === 'connected'");

        var clock = Stopwatch.StartNew();
        VmTestKit.Libvirt(server, c =>
        {
            using var domain = c.LookupDomainByUuid(id)!;
            domain.Destroy();
            return true;
        });
        await ui.Page.WaitForSelectorAsync($"{badge}[data-state='stopped']", new PageWaitForSelectorOptions { Timeout = 5000 });
        var elapsed = clock.Elapsed;
        Assert.Equal("stopped", await ui.Page.TextContentAsync(badge));
        Assert.True(elapsed <= TimeSpan.FromSeconds(1), $"the badge changed {elapsed.TotalMilliseconds:0} ms after the destroy");
    }

    [Fact]
    public async Task Search_filter_sort_and_page_live_in_the_url_and_another_users_machines_never_appear()
    {
        await using var server = await LimenTestServer.StartAsync();
        var (_, token) = await server.CreateUserAsync("ui-list-url");
        var (_, otherToken) = await server.CreateUserAsync("ui-list-url-other");
        var image = await VmTestKit.RegisterBlankImageAsync(server);
        using var client = server.Client(token);
        using var other = server.Client(otherToken);
        await VmTestKit.CreateVmAsync(client, image, "alpha-web", start: true, memoryMb: 256);
        await VmTestKit.CreateVmAsync(client, image, "beta-db", memoryMb: 512);
        await VmTestKit.CreateVmAsync(client, image, "gamma-web", memoryMb: 128);
        // Named to match my search, in my filter's state: it must still never show.
        var theirs = (await VmTestKit.CreateVmAsync(other, image, "alpha-web-theirs", start: true)).GetProperty("id").GetGuid();

        await using var ui = await UiSession.SignInAsync(browser.Browser, server, "ui-list-url");
        await ui.Page.GotoAsync(ui.Url("/vms"));
        Assert.Equal(["alpha-web", "beta-db", "gamma-web"], await NamesAsync(ui));
        Assert.Equal(0, await ui.Page.Locator("th", new() { HasTextString = "Owner" }).CountAsync());

        await ui.Page.FillAsync("#vm-search", "web");
        await ui.Page.SelectOptionAsync("#vm-sort", "-name");
        await ui.Page.ClickAsync("form[role=search] button[type=submit]");
        await ui.Page.WaitForURLAsync(url => url.Contains("q=web", StringComparison.Ordinal) && url.Contains("sort=-name", StringComparison.Ordinal));
        Assert.Equal(["gamma-web", "alpha-web"], await NamesAsync(ui));

        await ui.Page.GotoAsync(ui.Url("/vms?q=web&state=running"));
        Assert.Equal(["alpha-web"], await NamesAsync(ui));
        Assert.Equal("running", await ui.Page.InputValueAsync("#vm-state"));
        Assert.Equal("web", await ui.Page.InputValueAsync("#vm-search"));

        await ui.Page.GotoAsync(ui.Url("/vms?sort=-memory"));
        Assert.Equal(["beta-db", "alpha-web", "gamma-web"], await NamesAsync(ui));
        // The header link turns the order around and says so.
        await ui.Page.ClickAsync("th a:text('Memory')");
        await ui.Page.WaitForURLAsync(url => url.EndsWith("sort=memory", StringComparison.Ordinal));
        // Enhanced navigation: the address changes first, the rows when the response is patched in.
        await ui.Page.WaitForSelectorAsync("th[aria-sort=ascending] a:text('Memory')");
        Assert.Equal(["gamma-web", "alpha-web", "beta-db"], await NamesAsync(ui));
        Assert.Equal("ascending", await ui.Page.GetAttributeAsync("th:has(a:text('Memory'))", "aria-sort"));

        var html = await ui.Page.ContentAsync();
        Assert.DoesNotContain(theirs.ToString(), html, StringComparison.Ordinal);
        Assert.DoesNotContain("alpha-web-theirs", html, StringComparison.Ordinal);
        await ui.Page.GotoAsync(ui.Url("/vms?q=theirs"));
        Assert.Empty(await NamesAsync(ui));

        // An admin sees everybody's, with the owner.
        await using var admin = await UiSession.SignInAsync(browser.Browser, server, "admin", server.AdminPassword);
        await admin.Page.GotoAsync(admin.Url("/vms?q=alpha"));
        Assert.Equal(["alpha-web", "alpha-web-theirs"], await NamesAsync(admin));
        Assert.Equal("ui-list-url-other", await admin.Page.TextContentAsync($"tr[data-vm='{theirs}'] td[data-label=Owner]"));

        // A filter that is not one: told, nothing listed.
        var bad = await ui.Page.GotoAsync(ui.Url("/vms?state=sleeping"));
        Assert.Equal(400, bad!.Status);
        Assert.Contains("state must be one of", await ui.Page.TextContentAsync("main .problem"));
    }

    [Fact]
    public async Task Bulk_start_and_stop_answer_per_machine_and_the_selection_survives_a_live_update()
    {
        await using var server = await LimenTestServer.StartAsync();
        var (_, token) = await server.CreateUserAsync("ui-list-bulk");
        var (_, otherToken) = await server.CreateUserAsync("ui-list-bulk-other");
        var image = await VmTestKit.RegisterBlankImageAsync(server);
        using var client = server.Client(token);
        using var other = server.Client(otherToken);
        var a = await IdAsync(VmTestKit.CreateVmAsync(client, image, "bulk-a"));
        var b = await IdAsync(VmTestKit.CreateVmAsync(client, image, "bulk-b"));
        var c = await IdAsync(VmTestKit.CreateVmAsync(client, image, "bulk-c", start: true));

        await using var ui = await UiSession.SignInAsync(browser.Browser, server, "ui-list-bulk");
        await ui.Page.GotoAsync(ui.Url("/vms?sort=-created"));
        await ui.Page.WaitForFunctionAsync("() => document.documentElement.dataset.live === 'connected'");
        await ui.Page.CheckAsync($"input[name=ids][value='{a}']");
        await ui.Page.CheckAsync($"input[name=ids][value='{b}']");

        // A new machine lands on top (newest first) and the list re-renders in place: the ticks stay on their machines.
        var d = await IdAsync(VmTestKit.CreateVmAsync(client, image, "bulk-d"));
        await ui.Page.WaitForSelectorAsync($"tr[data-vm='{d}']");
        await ui.Page.WaitForTimeoutAsync(200);
        Assert.True(await ui.Page.IsCheckedAsync($"input[name=ids][value='{a}']"));
        Assert.True(await ui.Page.IsCheckedAsync($"input[name=ids][value='{b}']"));
        Assert.False(await ui.Page.IsCheckedAsync($"input[name=ids][value='{c}']"));
        Assert.False(await ui.Page.IsCheckedAsync($"input[name=ids][value='{d}']"));

        await ui.Page.ClickAsync("button[value=start]");
        await ui.Page.WaitForSelectorAsync("#bulk-results");
        Assert.Equal("true", await ui.Page.GetAttributeAsync($"[data-result='{a}']", "data-ok"));
        Assert.Equal("true", await ui.Page.GetAttributeAsync($"[data-result='{b}']", "data-ok"));
        Assert.Contains("ok, running", await ui.Page.TextContentAsync($"[data-result='{a}']"));
        await ui.Page.WaitForSelectorAsync($"[data-vm-state='{a}'][data-state=running]");
        await ui.Page.WaitForSelectorAsync($"[data-vm-state='{b}'][data-state=running]");
        Assert.Equal("running", await StateAsync(client, a));
        Assert.Equal("stopped", await StateAsync(client, d));

        // Two that stop, and another user's (its id slipped into the form): each told; the unticked one untouched.
        var theirs = await IdAsync(VmTestKit.CreateVmAsync(other, image, "bulk-theirs", start: true));
        await ui.Page.EvaluateAsync(
            $"() => {{ const f = document.querySelector('limen-vm-list form'); const i = document.createElement('input'); i.type = 'hidden'; i.name = 'ids'; i.value = '{theirs}'; f.appendChild(i); }}");
        await ui.Page.UncheckAsync($"input[name=ids][value='{b}']");
        await ui.Page.CheckAsync($"input[name=ids][value='{c}']");
        await ui.Page.ClickAsync("button[value=stop]");
        await ui.Page.WaitForSelectorAsync("#bulk-results h2:text('Stop results')");
        Assert.Equal("true", await ui.Page.GetAttributeAsync($"[data-result='{a}']", "data-ok"));
        Assert.Equal("true", await ui.Page.GetAttributeAsync($"[data-result='{c}']", "data-ok"));
        Assert.Equal("false", await ui.Page.GetAttributeAsync($"[data-result='{theirs}']", "data-ok"));
        Assert.Contains("not found", await ui.Page.TextContentAsync($"[data-result='{theirs}']"), StringComparison.OrdinalIgnoreCase);
        Assert.Equal(0, await ui.Page.Locator($"[data-result='{b}']").CountAsync());
        Assert.Equal("stopped", await StateAsync(client, a));
        Assert.Equal("stopped", await StateAsync(client, c));
        Assert.Equal("running", await StateAsync(client, b));
        Assert.Equal("running", await StateAsync(other, theirs));
        Assert.Equal(1, await server.Database.ScalarAsync(
            $"SELECT count(*) FROM audit_logs WHERE action = 'vm.stop' AND target_id = '{a}' AND result = 'success'"));
    }

    [Fact]
    public async Task The_list_passes_axe_on_a_desktop_and_a_phone()
    {
        await using var server = await LimenTestServer.StartAsync();
        var (userId, token) = await server.CreateUserAsync("ui-list-axe");
        var image = await VmTestKit.RegisterBlankImageAsync(server);
        using var client = server.Client(token);
        using (var admin = server.Client(await server.AdminTokenAsync()))
        {
            Assert.True((await admin.PutAsJsonAsync("/api/admin/quota", new { max_vcpus = 1000, max_memory_mb = 1_000_000 })).IsSuccessStatusCode);
            Assert.True((await admin.PutAsJsonAsync($"/api/admin/users/{userId}/quota", new { max_vms = 100, max_vcpus = 100, max_memory_mb = 100_000 })).IsSuccessStatusCode);
        }

        for (var i = 0; i < 60; i++)
        {
            await VmTestKit.CreateVmAsync(client, image, $"axe-{i:00}", start: i % 12 == 0, memoryMb: 128 + 64 * (i % 4));
        }

        await using var desktop = await UiSession.SignInAsync(browser.Browser, server, "ui-list-axe");
        await desktop.Page.GotoAsync(desktop.Url("/vms"));
        Assert.Equal(50, (await NamesAsync(desktop)).Count);
        Assert.Equal("1–50 of 60 machines", await desktop.Page.TextContentAsync("#vm-count"));
        await desktop.AssertAccessibleAsync();
        await desktop.ScreenshotAsync("vm-list");
        await desktop.Page.ClickAsync("a[rel=next]");
        await desktop.Page.WaitForURLAsync(url => url.EndsWith("/vms?page=2", StringComparison.Ordinal));
        await desktop.Page.WaitForSelectorAsync("#vm-count:text('51–60 of 60 machines')");
        Assert.Equal(10, (await NamesAsync(desktop)).Count);

        await using var phone = await UiSession.SignInAsync(browser.Browser, server, "ui-list-axe", viewport: UiSession.Phone);
        await phone.Page.GotoAsync(phone.Url("/vms"));
        Assert.True(await phone.Page.EvaluateAsync<bool>("() => document.documentElement.scrollWidth <= window.innerWidth"),
            "the list scrolls sideways at 390 px");
        await phone.AssertAccessibleAsync();
        await phone.ScreenshotAsync("vm-list-phone");
    }

    private static async Task<List<string>> NamesAsync(UiSession ui) =>
        [.. await ui.Page.Locator("table.vms tbody td[data-label=Name]").AllTextContentsAsync()];

    private static async Task<Guid> IdAsync(Task<JsonElement> created) => (await created).GetProperty("id").GetGuid();

    private static async Task<string?> StateAsync(HttpClient client, Guid id) =>
        JsonDocument.Parse(await client.GetStringAsync($"/api/vms/{id}")).RootElement.GetProperty("state").GetString();
}
