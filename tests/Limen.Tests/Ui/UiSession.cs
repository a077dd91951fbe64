using System.Collections.Concurrent;
using Deque.AxeCore.Playwright;
using Limen.Tests.Infrastructure;
using Microsoft.Playwright;

namespace Limen.Tests.Ui;

/// <summary>
/// One person at the browser: an isolated browser context (own cookies) on one Limen server. Every
/// request to another origin is aborted and fails the test when the session ends ("no request
/// ever leaves the origin"); so does an uncaught script error on any page.
/// </summary>
public sealed class UiSession : IAsyncDisposable
{
    public const string Password = "correct horse battery";
    public static readonly ViewportSize Desktop = new() { Width = 1280, Height = 800 };
    public static readonly ViewportSize Phone = new() { Width = 390, Height = 844 };

    private readonly ConcurrentQueue<string> foreignRequests = new();
    private readonly ConcurrentQueue<string> scriptErrors = new();

    private UiSession(LimenTestServer server, IBrowserContext context, IPage page)
    {
        Server = server;
        Context = context;
        Page = page;
    }

    public LimenTestServer Server { get; }
    public IBrowserContext Context { get; }
    public IPage Page { get; }

    /// <summary>A fresh browser context on <paramref name="server"/>, nobody signed in.</summary>
    public static async Task<UiSession> OpenAsync(IBrowser browser, LimenTestServer server, ViewportSize? viewport = null)
    {
        var context = await browser.NewContextAsync(new BrowserNewContextOptions { ViewportSize = viewport ?? Desktop });
        context.SetDefaultTimeout(15_000);
        var page = await context.NewPageAsync();
        var session = new UiSession(server, context, page);
        await context.RouteAsync("**/*", async route =>
        {
            if (new Uri(route.Request.Url).Authority != server.BaseAddress.Authority)
            {
                session.foreignRequests.Enqueue(route.Request.Url);
                await route.AbortAsync();
                return;
            }

            await route.ContinueAsync();
        });
        page.PageError += (_, error) => session.scriptErrors.Enqueue(error);
        return session;
    }

    /// <summary>A browser context signed in as <paramref name="username"/>, on the dashboard.</summary>
    public static async Task<UiSession> SignInAsync(IBrowser browser, LimenTestServer server, string username,
        string password = Password, ViewportSize? viewport = null)
    {
        var session = await OpenAsync(browser, server, viewport);
        await session.Page.GotoAsync(session.Url("/signin"));
        await session.SignInHereAsync(username, password);
        await session.Page.WaitForURLAsync(url => !new Uri(url).AbsolutePath.StartsWith("/signin", StringComparison.Ordinal));
        return session;
    }

    /// <summary>Fills and submits the sign-in form the page shows.</summary>
    public async Task SignInHereAsync(string username, string password = Password)
    {
        await Page.FillAsync("#username", username);
        await Page.FillAsync("#password", password);
        await Page.ClickAsync("form button[type=submit]");
    }

    public string Url(string path) => new Uri(Server.BaseAddress, path).ToString();

    /// <summary>axe on the page as it is now: no serious or critical violation.</summary>
    public async Task AssertAccessibleAsync()
    {
        var results = await Page.RunAxe();
        var bad = results.Violations.Where(v => v.Impact is "serious" or "critical").ToList();
        Assert.True(bad.Count == 0, $"axe on {Page.Url}:\n" + string.Join("\n", bad.Select(v =>
            $"[{v.Impact}] {v.Id}: {v.Help} — {string.Join("; ", v.Nodes.Take(3).Select(n => n.Html))}")));
    }

    /// <summary>The whole page as artifacts/ui/<paramref name="name"/>.png.</summary>
    public Task ScreenshotAsync(string name) =>
        Page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(RepoPaths.Artifacts("ui"), name + ".png"), FullPage = true });

    public async ValueTask DisposeAsync()
    {
        await Context.CloseAsync();
        Assert.True(foreignRequests.IsEmpty, "requests left the origin: " + string.Join(", ", foreignRequests));
        Assert.True(scriptErrors.IsEmpty, "script errors: " + string.Join(" | ", scriptErrors));
    }
}
