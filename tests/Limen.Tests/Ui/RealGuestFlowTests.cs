using System.Net.Http.Json;
using Limen.Features.Hosts;
using Limen.Tests.Infrastructure;
using Limen.Tests.RemoteConsole;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;

namespace Limen.Tests.Ui;

/// <summary>
/// What a new user does first, in the browser, on a real booting guest (qemu:///system): sign in,
/// create a VM from the tiny guest, start it and see it running without a reload, watch it in the
/// console, take a snapshot, revert to it, delete the VM.
/// </summary>
[Collection(QemuSystemCollection.Name)]
public sealed class RealGuestFlowTests
{
    private const string Banner = "LIMEN-GUEST READY";

    [Fact]
    public async Task Sign_in_create_start_console_snapshot_revert_and_delete_on_a_real_guest()
    {
        await using var server = await LimenTestServer.StartAsync(new Dictionary<string, string?> { ["Limen:Hypervisor:Uri"] = "qemu:///system" });
        var (userId, token) = await server.CreateUserAsync("flow-user");
        using var api = server.Client(token);
        var image = await VmTestKit.RegisterTinyGuestAsync(server);
        await using var browser = await UiBrowser.LaunchAsync();
        await using var ui = await UiSession.SignInAsync(browser.Browser, server, "flow-user");
        try
        {
            await ui.Page.GotoAsync(ui.Url("/vms/new"));
            await ui.Page.SelectOptionAsync("#image_id", image.ToString());
            await ui.Page.FillAsync("#name", "flow-guest");
            await ui.Page.FillAsync("#vcpus", "1");
            await ui.Page.FillAsync("#memory_mb", "256");
            await ui.Page.FillAsync("#disk_gb", "1");
            await ui.Page.ClickAsync("#create-submit");
            await ui.Page.WaitForURLAsync(url => System.Text.RegularExpressions.Regex.IsMatch(new Uri(url).AbsolutePath, "^/vms/[0-9a-f-]{36}$"));
            var id = Guid.Parse(new Uri(ui.Page.Url).AbsolutePath["/vms/".Length..]);
            Assert.Equal("stopped", await ui.Page.GetAttributeAsync("#vm-state", "data-state"));

            // Started from the page; the badge turns running without the page being loaded again.
            await ui.Page.EvaluateAsync("() => window.notReloaded = true");
            await ui.Page.ClickAsync("#action-start");
            await ui.Page.WaitForSelectorAsync("#vm-state[data-state=running]", new PageWaitForSelectorOptions { Timeout = 60_000 });
            Assert.True(await ui.Page.EvaluateAsync<bool>("() => window.notReloaded === true"), "starting reloaded the page");

            var serial = server.Services.GetRequiredService<HostRegistry>().Local.SerialLogPath(id);
            await ConsoleKit.WaitForAsync(() => Task.FromResult(File.Exists(serial) && File.ReadAllText(serial).Contains(Banner, StringComparison.Ordinal)),
                TimeSpan.FromSeconds(90), "the guest's boot banner");

            // The console, from the VM's page, without signing in again: the guest's screen.
            await ui.Page.ClickAsync("a:text('Open console')");
            await ui.Page.WaitForURLAsync(ui.Url($"/vms/{id}/console"));
            await ConsoleRealGuestTests.WaitConnectedAsync(ui.Page);
            await ui.ScreenshotAsync("flow-console");

            await ui.Page.GotoAsync(ui.Url($"/vms/{id}"));
            await ui.Page.FillAsync("#snapshot_name", "first-boot");
            await ui.Page.ClickAsync("#snapshot-create");
            var row = ui.Page.Locator("tr[data-snapshot=first-boot]");
            await row.WaitForAsync(new LocatorWaitForOptions { Timeout = 120_000 });
            // A disk-only snapshot of a running VM: the page says a revert leads to stopped, and the badge goes there.
            var leadsTo = (await row.Locator("td[data-label='Revert leads to']").TextContentAsync())?.Trim();
            Assert.Equal("stopped", leadsTo);
            await row.Locator("summary:text('Revert…')").ClickAsync();
            await row.Locator("button:text('Revert now')").ClickAsync();
            await ui.Page.WaitForSelectorAsync($"#vm-state[data-state={leadsTo}]", new PageWaitForSelectorOptions { Timeout = 120_000 });
            await ConsoleKit.WaitForAsync(async () => await server.Database.ScalarAsync(
                    $"SELECT count(*) FROM audit_logs WHERE action = 'snapshot.revert' AND result = 'success' AND target_id = '{id}'") == 1,
                TimeSpan.FromSeconds(60), "the revert's audit row");
            await ui.ScreenshotAsync("flow-after-revert");

            // The revert's events re-render the page (live.js); a name typed before that lands would be wiped with it.
            await ui.Page.WaitForTimeoutAsync(2000);
            await ui.Page.FillAsync("#confirm_name", "flow-guest");
            await ui.Page.ClickAsync("#vm-delete");
            await ui.Page.WaitForURLAsync(url => new Uri(url).AbsolutePath == "/vms", new PageWaitForURLOptions { Timeout = 120_000 });
            Assert.Equal(0, await server.Database.ScalarAsync($"SELECT count(*) FROM vms WHERE owner_id = '{userId}'"));
            Assert.False(VmTestKit.DomainExists(server, id));
        }
        finally
        {
            // Whatever the page left behind goes, even when a step above failed.
            var left = await api.GetFromJsonAsync<System.Text.Json.JsonElement>("/api/vms");
            foreach (var vm in left.GetProperty("items").EnumerateArray())
            {
                await api.DeleteAsync($"/api/vms/{vm.GetProperty("id").GetGuid()}");
            }
        }
    }
}
