using System.Buffers.Binary;
using System.Net;
using System.Net.WebSockets;
using Limen.Features.Hosts;
using Limen.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;

namespace Limen.Tests.RemoteConsole;

/// <summary>The console against a real tiny guest on qemu:///system: RFB through /vnc/{id}, and the page in Chromium.</summary>
[Collection(QemuSystemCollection.Name)]
public sealed class ConsoleRealGuestTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private const string Banner = "LIMEN-GUEST READY";
    private const string Password = "correct horse battery";

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
    public async Task The_console_page_signs_in_shows_the_guest_in_novnc_and_reconnects_with_a_fresh_ticket_after_the_vm_restarts()
    {
        await using var server = await StartAsync();
        var (_, token) = await server.CreateUserAsync("page-owner");
        using var owner = server.Client(token);
        await WithGuestAsync(server, owner, async id =>
        {
            using var playwright = await Playwright.CreateAsync();
            var profile = Directory.CreateTempSubdirectory("limen-test-chromium-");
            try
            {
                await using var browser = await playwright.Chromium.LaunchPersistentContextAsync(profile.FullName, new BrowserTypeLaunchPersistentContextOptions
                {
                    ExecutablePath = "/usr/bin/chromium",
                    Headless = true,
                    Args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
                    ViewportSize = new ViewportSize { Width = 1024, Height = 768 },
                });
                var page = browser.Pages.Count > 0 ? browser.Pages[0] : await browser.NewPageAsync();
                var errors = new List<string>();
                page.PageError += (_, error) => errors.Add(error);
                page.Console += (_, message) =>
                {
                    if (message.Type == "error")
                    {
                        errors.Add(message.Text);
                    }
                };

                var response = await page.GotoAsync(new Uri(server.BaseAddress, $"/console/{id}").ToString());
                Assert.Equal((int)HttpStatusCode.OK, response!.Status);
                await page.FillAsync("#username", "page-owner");
                await page.FillAsync("#password", Password);
                await page.ClickAsync("#login button[type=submit]");
                await page.WaitForSelectorAsync("#status[data-state=connected]", new PageWaitForSelectorOptions { Timeout = 60_000 });
                await page.WaitForFunctionAsync(LitPixelsScript, null, new PageWaitForFunctionOptions { Timeout = 30_000 });
                await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(RepoPaths.Artifacts("console"), "console-page.png") });
                Assert.False(await page.IsVisibleAsync("#login"));
                Assert.True(await page.IsEnabledAsync("#ctrl-alt-del"));
                await page.ClickAsync("#ctrl-alt-del");
                Assert.Equal("console-guest", await page.TextContentAsync("#title"));
                // The token stays in sessionStorage, never in a URL.
                Assert.DoesNotContain(await page.EvaluateAsync<string>("() => sessionStorage.getItem('limen.access_token')"), page.Url, StringComparison.Ordinal);

                // The VM stops: the session ends as vm_stopped and the page keeps asking for a fresh ticket until the VM is back.
                Assert.Equal(HttpStatusCode.OK, (await owner.PostAsync($"/api/vms/{id}/actions/stop", null)).StatusCode);
                await page.WaitForSelectorAsync("#status[data-state=reconnecting]", new PageWaitForSelectorOptions { Timeout = 30_000 });
                Assert.Equal(HttpStatusCode.OK, (await owner.PostAsync($"/api/vms/{id}/actions/start", null)).StatusCode);
                await page.WaitForSelectorAsync("#status[data-state=connected]", new PageWaitForSelectorOptions { Timeout = 60_000 });
                await page.WaitForFunctionAsync(LitPixelsScript, null, new PageWaitForFunctionOptions { Timeout = 60_000 });
                await page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(RepoPaths.Artifacts("console"), "console-page-reconnected.png") });

                Assert.Equal(1, await server.Database.ScalarAsync($"SELECT count(*) FROM console_sessions WHERE vm_id = '{id}' AND end_reason = 'vm_stopped'"));
                Assert.Equal(1, await server.Database.ScalarAsync($"SELECT count(*) FROM console_sessions WHERE vm_id = '{id}' AND ended_at IS NULL"));
                Assert.Equal(1, await ConsoleKit.GaugeAsync(server));
                errors.ForEach(output.WriteLine);
                // Expected, and logged by the browser: the 401 of the refresh tried before signing in,
                // and the 409s of the ticket requests while the VM was stopped.
                Assert.DoesNotContain(errors, e => !System.Text.RegularExpressions.Regex.IsMatch(e, "^Failed to load resource: .* status of 40[19] "));
            }
            finally
            {
                profile.Delete(recursive: true);
            }
        });
    }

    /// <summary>True once noVNC's canvas has a framebuffer with more than a hundred non-black pixels.</summary>
    private const string LitPixelsScript = """
        () => {
          const canvas = document.querySelector('#screen canvas');
          if (!canvas || canvas.width < 2 || canvas.height < 2) return false;
          const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
          let lit = 0;
          for (let i = 0; i < data.length; i += 4) if (data[i] | data[i + 1] | data[i + 2]) lit++;
          return lit > 100;
        }
        """;
}
