using System.Buffers.Binary;
using System.Net;
using System.Net.WebSockets;
using System.Text.RegularExpressions;
using Limen.Features.Hosts;
using Limen.Tests.Infrastructure;
using Limen.Tests.Ui;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;

namespace Limen.Tests.RemoteConsole;

/// <summary>The console against a real tiny guest on qemu:///system: RFB through /vnc/{id}, and the console page of the UI in Chromium.</summary>
[Collection(QemuSystemCollection.Name)]
public sealed class ConsoleRealGuestTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private const string Banner = "LIMEN-GUEST READY";

    private static Task<LimenTestServer> StartAsync() =>
        LimenTestServer.StartAsync(new Dictionary<string, string?> { ["Limen:Hypervisor:Uri"] = "qemu:///system" });

    /// <summary>Creates and boots the tiny guest, runs <paramref name="test"/>, and always deletes the VM.</summary>
    private static async Task WithGuestAsync(LimenTestServer server, HttpClient owner, Func<Guid, Task> test)
    {
        var image = await VmTestKit.RegisterTinyGuestAsync(server);
        var id = (await VmTestKit.CreateVmAsync(owner, image, "console-guest", start: true, memoryMb: 256)).GetProperty("id").GetGuid();
        try
        {
            var serial = server.Services.GetRequiredService<HostRegistry>().Local.SerialLogPath(id);
            await ConsoleKit.WaitForAsync(() => Task.FromResult(File.Exists(serial) && File.ReadAllText(serial).Contains(Banner, StringComparison.Ordinal)),
                TimeSpan.FromSeconds(90), "the guest's boot banner");
            await test(id);
        }
        finally
        {
            await owner.DeleteAsync($"/api/vms/{id}");
        }
    }

    [Fact]
    public async Task An_rfb_client_completes_the_handshake_through_the_proxy_gets_pixels_and_is_closed_as_vm_stopped_when_the_vm_is_destroyed()
    {
        await using var server = await StartAsync();
        var (_, token) = await server.CreateUserAsync("rfb-owner");
        using var owner = server.Client(token);
        await WithGuestAsync(server, owner, async id =>
        {
            var (_, url) = await ConsoleKit.TicketAsync(owner, id);
            using var socket = await ConsoleKit.OpenAsync(url, origin: $"http://{server.BaseAddress.Authority}");

            var display = await ConsoleKit.RfbHandshakeAsync(socket);
            output.WriteLine($"ServerInit: {display.Width}x{display.Height}, {display.BitsPerPixel} bpp, name '{display.Name}'");

            // The guest's framebuffer size, independently: libvirt's screenshot of the same display.
            var screenshot = Path.Combine(RepoPaths.Artifacts("console"), "rfb-guest-screenshot.png");
            await ExternalProcess.RunAsync("virsh", "-c", "qemu:///system", "screenshot", LimenTestServer.DomainPrefix + id, screenshot);
            var png = await File.ReadAllBytesAsync(screenshot);
            Assert.Equal((int)BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(16)), display.Width);
            Assert.Equal((int)BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(20)), display.Height);

            var (pixels, lit) = await ConsoleKit.RequestFramebufferAsync(socket, display, display.Width, display.Height);
            output.WriteLine($"FramebufferUpdate: {pixels} pixels, {lit} not black");
            Assert.Equal((long)display.Width * display.Height, pixels);
            Assert.True(lit > 100, "the guest's screen came through blank");
            Assert.Equal(1, await ConsoleKit.GaugeAsync(server));

            // The VM destroyed behind Limen's back while the console is open.
            VmTestKit.Libvirt(server, c =>
            {
                using var domain = c.LookupDomainByUuid(id)!;
                domain.Destroy();
                return true;
            });

            var (status, reason) = await ConsoleKit.ReadCloseAsync(socket);
            Assert.Equal(WebSocketCloseStatus.NormalClosure, status);
            Assert.Equal("vm_stopped", reason);
            await ConsoleKit.WaitForAsync(async () => await server.Database.ScalarAsync(
                    $"SELECT count(*) FROM console_sessions WHERE vm_id = '{id}' AND end_reason = 'vm_stopped'") == 1,
                TimeSpan.FromSeconds(10), "the vm_stopped record");
            Assert.Equal(0, await ConsoleKit.GaugeAsync(server));
        });
    }

    [Fact]
    public async Task The_console_page_after_a_cookie_sign_in_shows_the_guest_and_reconnects_by_itself_after_a_reboot_and_a_stop_start()
    {
        await using var server = await StartAsync();
        var (_, token) = await server.CreateUserAsync("page-owner");
        using var owner = server.Client(token);
        await WithGuestAsync(server, owner, async id =>
        {
            await using var browser = await UiBrowser.LaunchAsync();
            await using var ui = await UiSession.SignInAsync(browser.Browser, server, "page-owner");
            var errors = new List<string>();
            ui.Page.Console += (_, message) =>
            {
                if (message.Type == "error")
                {
                    errors.Add(message.Text);
                }
            };

            var response = await ui.Page.GotoAsync(ui.Url($"/vms/{id}/console"));
            Assert.Equal((int)HttpStatusCode.OK, response!.Status);
            await WaitConnectedAsync(ui.Page);
            Assert.Contains("console-guest", await ui.Page.TextContentAsync("h1"), StringComparison.Ordinal);
            Assert.True(await ui.Page.IsEnabledAsync("[data-action=ctrl-alt-del]"));
            Assert.False(await ui.Page.IsVisibleAsync("[data-action=connect]"));
            await ui.Page.ClickAsync("[data-action=ctrl-alt-del]");
            await ui.AssertAccessibleAsync();
            await ui.ScreenshotAsync("console");
            // The cookie did it all: no token in page storage or in the address.
            Assert.Equal(0, await ui.Page.EvaluateAsync<int>("() => localStorage.length + sessionStorage.length"));
            Assert.DoesNotContain("ticket", ui.Page.Url, StringComparison.Ordinal);

            // The guest reboots (power button, then a reset): the page shows the new boot by itself.
            var serial = server.Services.GetRequiredService<HostRegistry>().Local.SerialLogPath(id);
            Assert.Equal(HttpStatusCode.OK, (await owner.PostAsync($"/api/vms/{id}/actions/reboot", null)).StatusCode);
            await ConsoleKit.WaitForAsync(() => Task.FromResult(Regex.Count(File.ReadAllText(serial), Banner) >= 2),
                TimeSpan.FromSeconds(120), "the boot banner after the reboot");
            await WaitConnectedAsync(ui.Page);

            // The VM stops: the session ends as vm_stopped and the page keeps asking for a fresh ticket until the VM is back.
            Assert.Equal(HttpStatusCode.OK, (await owner.PostAsync($"/api/vms/{id}/actions/stop", null)).StatusCode);
            await ui.Page.WaitForSelectorAsync(".console-status[data-state=reconnecting]", new PageWaitForSelectorOptions { Timeout = 30_000 });
            Assert.False(await ui.Page.IsEnabledAsync("[data-action=ctrl-alt-del]"));
            Assert.Equal(HttpStatusCode.OK, (await owner.PostAsync($"/api/vms/{id}/actions/start", null)).StatusCode);
            await WaitConnectedAsync(ui.Page);
            await ui.ScreenshotAsync("console-reconnected");

            Assert.Equal(1, await server.Database.ScalarAsync($"SELECT count(*) FROM console_sessions WHERE vm_id = '{id}' AND end_reason = 'vm_stopped'"));
            // A session's row is closed after its socket is (as the relay records the end), so an
            // earlier attempt of the page's reconnect may still be open for a moment: CI once saw 2 here.
            await Eventually.WaitAsync(async () => await server.Database.ScalarAsync(
                $"SELECT count(*) FROM console_sessions WHERE vm_id = '{id}' AND ended_at IS NULL") == 1, TimeSpan.FromSeconds(15), "one open console session");
            Assert.Equal(1, await ConsoleKit.GaugeAsync(server));
            errors.ForEach(output.WriteLine);
            // Expected, and logged by the browser: the 409s of the ticket requests while the VM was stopped.
            Assert.DoesNotContain(errors, e => !Regex.IsMatch(e, "^Failed to load resource: .* status of 409 "));
        });
    }

    [Fact]
    public async Task At_the_session_limit_the_second_tab_says_so_and_ending_the_other_session_lets_it_connect()
    {
        await using var server = await LimenTestServer.StartAsync(new Dictionary<string, string?>
        {
            ["Limen:Hypervisor:Uri"] = "qemu:///system",
            ["Limen:Console:MaxSessionsPerUser"] = "1",
        });
        var (_, token) = await server.CreateUserAsync("limit-owner");
        using var owner = server.Client(token);
        await WithGuestAsync(server, owner, async id =>
        {
            await using var browser = await UiBrowser.LaunchAsync();
            await using var ui = await UiSession.SignInAsync(browser.Browser, server, "limit-owner");
            await ui.Page.GotoAsync(ui.Url($"/vms/{id}/console"));
            await WaitConnectedAsync(ui.Page);

            var second = await ui.Context.NewPageAsync();
            await second.GotoAsync(ui.Url($"/vms/{id}/console"));
            await second.WaitForSelectorAsync(".console-status[data-state=ended][data-reason=session_limit]");
            Assert.Contains("1 console sessions open", await second.TextContentAsync(".console-status"), StringComparison.Ordinal);
            var end = second.Locator(".console-limit [data-end-session]");
            await end.First.WaitForAsync();
            Assert.Equal(1, await end.CountAsync());
            Assert.Contains("this machine", await end.TextContentAsync(), StringComparison.Ordinal);
            await ui.ScreenshotAsync("console-limit-first");
            await second.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(RepoPaths.Artifacts("ui"), "console-limit.png"), FullPage = true });

            await end.ClickAsync();
            await WaitConnectedAsync(second);
            // The first tab was ended on purpose: it says why and does not reconnect by itself.
            await ui.Page.WaitForSelectorAsync(".console-status[data-state=ended][data-reason=user_terminated]");
            Assert.True(await ui.Page.IsVisibleAsync("[data-action=connect]"));
            await Task.Delay(3000);
            Assert.Equal("ended", await ui.Page.GetAttributeAsync(".console-status", "data-state"));
            Assert.Equal(1, await server.Database.ScalarAsync($"SELECT count(*) FROM console_sessions WHERE vm_id = '{id}' AND end_reason = 'user_terminated'"));
            Assert.Equal(1, await server.Database.ScalarAsync($"SELECT count(*) FROM console_sessions WHERE vm_id = '{id}' AND ended_at IS NULL"));
            await second.CloseAsync();
        });
    }

    /// <summary>The page's status says connected and noVNC's canvas shows the guest.</summary>
    internal static async Task WaitConnectedAsync(IPage page)
    {
        await page.WaitForSelectorAsync(".console-status[data-state=connected]", new PageWaitForSelectorOptions { Timeout = 90_000 });
        await page.WaitForFunctionAsync(LitPixelsScript, null, new PageWaitForFunctionOptions { Timeout = 60_000 });
    }

    /// <summary>True once noVNC's canvas has a framebuffer with more than a hundred non-black pixels.</summary>
    private const string LitPixelsScript = """
        () => {
          const canvas = document.querySelector('limen-console canvas');
          if (!canvas || canvas.width < 2 || canvas.height < 2) return false;
          const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
          let lit = 0;
          for (let i = 0; i < data.length; i += 4) if (data[i] | data[i + 1] | data[i + 2]) lit++;
          return lit > 100;
        }
        """;
}
