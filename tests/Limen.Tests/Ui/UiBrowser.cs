using Microsoft.Playwright;

namespace Limen.Tests.Ui;

/// <summary>
/// Debian's Chromium (/usr/bin/chromium) driven by Playwright, one per test class
/// (<c>IClassFixture&lt;UiBrowser&gt;</c>) or per collection; classes with their own run in parallel.
/// Tests that boot a real guest (QemuSystemCollection) launch one with <see cref="LaunchAsync"/>.
/// </summary>
public sealed class UiBrowser : IAsyncLifetime
{
    private IPlaywright? playwright;
    private IBrowser? browser;

    public IBrowser Browser => browser ?? throw new InvalidOperationException("The browser is not started.");

    public static async Task<UiBrowser> LaunchAsync()
    {
        var launched = new UiBrowser();
        await launched.InitializeAsync();
        return launched;
    }

    public async Task InitializeAsync()
    {
        playwright = await Playwright.CreateAsync();
        browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = "/usr/bin/chromium",
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
        });
    }

    public async Task DisposeAsync()
    {
        if (browser is not null)
        {
            await browser.CloseAsync();
        }

        playwright?.Dispose();
    }
}

/// <summary>UI test classes that prefer one shared Chromium and run one after another.</summary>
[CollectionDefinition(Name)]
public sealed class UiCollection : ICollectionFixture<UiBrowser>
{
    public const string Name = "ui";
}
