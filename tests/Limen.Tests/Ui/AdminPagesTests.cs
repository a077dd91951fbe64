using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Limen.Features.Users;
using Limen.Tests.Infrastructure;
using Limen.Tests.Observability;
using Microsoft.Playwright;
using Npgsql;

namespace Limen.Tests.Ui;

/// <summary>The admin pages in Chromium against a real server: who may open them, and what each changes.</summary>
public sealed class AdminPagesTests(UiBrowser browser) : IClassFixture<UiBrowser>
{
    private const string WebhookToken = "webhook-token-for-admin-pages";

    private static readonly string[] AdminPages =
        ["/admin", "/admin/users", "/admin/quota", "/admin/sessions", "/admin/alerts", "/admin/audit", "/admin/backups", "/admin/images"];

    private Task<UiSession> AdminAsync(LimenTestServer server, ViewportSize? viewport = null) =>
        UiSession.SignInAsync(browser.Browser, server, AdminBootstrap.Username, server.AdminPassword, viewport);

    [Fact]
    public async Task A_user_gets_403_for_every_admin_page_and_sees_none_of_it()
    {
        await using var server = await LimenTestServer.StartAsync();
        var (id, _) = await server.CreateUserAsync("ui-not-admin");
        await using var ui = await UiSession.SignInAsync(browser.Browser, server, "ui-not-admin");

        foreach (var path in AdminPages.Append($"/admin/users/{id}"))
        {
            var response = await ui.Page.GotoAsync(ui.Url(path));
            Assert.Equal(403, response!.Status);
            var body = await ui.Page.ContentAsync();
            Assert.DoesNotContain("<table", body, StringComparison.Ordinal);
            Assert.DoesNotContain("ui-not-admin</a>", body, StringComparison.Ordinal);
            Assert.Equal(0, await ui.Page.Locator("form[method=post] input[name^='Create'], #admin-index").CountAsync());
        }
    }

    [Fact]
    public async Task An_admin_creates_a_user_resets_its_password_disables_it_and_sets_and_resets_its_quota()
    {
        await using var server = await LimenTestServer.StartAsync();
        await using var ui = await AdminAsync(server);
        var page = ui.Page;

        await page.GotoAsync(ui.Url("/admin"));
        Assert.Equal(8, await page.Locator("#admin-index a").CountAsync());
        await ui.AssertAccessibleAsync();
        await ui.ScreenshotAsync("admin-index");

        await page.GotoAsync(ui.Url("/admin/users"));
        await page.FillAsync("#new-username", "ui-made");
        await page.FillAsync("#new-password", "short");
        await page.ClickAsync("#create-user");
        await page.WaitForSelectorAsync("#problem-password");
        Assert.Equal(0, await server.Database.ScalarAsync("SELECT count(*) FROM users WHERE username = 'ui-made'"));

        await page.FillAsync("#new-username", "ui-made");
        await page.FillAsync("#new-password", "a fine long password");
        await page.ClickAsync("#create-user");
        await page.WaitForSelectorAsync("#user-done");
        Assert.Equal(1, await server.Database.ScalarAsync("SELECT count(*) FROM users WHERE username = 'ui-made' AND role = 'user' AND NOT disabled"));
        Assert.NotEmpty(await server.LoginAsync("ui-made", "a fine long password"));
        await ui.AssertAccessibleAsync();

        await page.FillAsync("#new-password", "another fine password");
        await page.ClickAsync("#reset-password");
        await page.WaitForURLAsync(url => url.EndsWith("done=password", StringComparison.Ordinal));
        Assert.NotEmpty(await server.LoginAsync("ui-made", "another fine password"));

        await page.ClickAsync("#toggle-disabled");
        await page.WaitForURLAsync(url => url.EndsWith("done=disabled", StringComparison.Ordinal));
        Assert.Equal("disabled", await page.TextContentAsync("#user-status"));
        Assert.Equal(1, await server.Database.ScalarAsync("SELECT count(*) FROM users WHERE username = 'ui-made' AND disabled"));
        using (var anonymous = server.Client())
        {
            var login = await anonymous.PostAsync("/api/auth/login", new StringContent(
                """{"username":"ui-made","password":"another fine password"}""", Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.Unauthorized, login.StatusCode);
        }

        await page.FillAsync("#QuotaChange-max_vms", "3");
        await page.FillAsync("#QuotaChange-max_snapshots", "7");
        await page.ClickAsync("#set-quota");
        await page.WaitForURLAsync(url => url.EndsWith("done=quota", StringComparison.Ordinal));
        Assert.Equal("3", await page.TextContentAsync("td[data-limit=max_vms]"));
        Assert.Equal(1, await server.Database.ScalarAsync(
            "SELECT count(*) FROM user_quotas q JOIN users u ON u.id = q.user_id WHERE u.username = 'ui-made' AND q.max_vms = 3 AND q.max_snapshots = 7 AND q.max_vcpus IS NULL"));
        await ui.ScreenshotAsync("admin-user");

        // The server's own check, as for a client that skips the input's min.
        await page.EvalOnSelectorAsync("#QuotaChange-max_vms", "input => input.removeAttribute('min')");
        await page.FillAsync("#QuotaChange-max_vms", "-1");
        await page.ClickAsync("#set-quota");
        await page.WaitForSelectorAsync("#problem-max_vms");
        Assert.Equal(1, await server.Database.ScalarAsync("SELECT count(*) FROM user_quotas q JOIN users u ON u.id = q.user_id WHERE u.username = 'ui-made' AND q.max_vms = 3"));

        await page.ClickAsync("#reset-quota");
        await page.WaitForURLAsync(url => url.EndsWith("done=quota-reset", StringComparison.Ordinal));
        Assert.Equal(1, await server.Database.ScalarAsync(
            "SELECT count(*) FROM user_quotas q JOIN users u ON u.id = q.user_id WHERE u.username = 'ui-made' AND q.max_vms IS NULL AND q.max_snapshots IS NULL"));
        foreach (var action in new[] { "user.create", "user.password.reset", "user.update", "quota.user.update", "quota.user.reset" })
        {
            Assert.Equal(1, await server.Database.ScalarAsync(
                $"SELECT count(*) FROM audit_logs a JOIN users u ON u.id::text = a.target_id WHERE u.username = 'ui-made' AND a.action = '{action}' AND a.result = 'success'"));
        }

        await page.GotoAsync(ui.Url("/admin/users?q=made"));
        Assert.Equal(1, await page.Locator("#users tbody tr").CountAsync());
        Assert.Equal("disabled", await page.TextContentAsync("tr[data-user='ui-made'] td[data-label=Status]"));
        await ui.AssertAccessibleAsync();
        await ui.ScreenshotAsync("admin-users");
    }

    [Fact]
    public async Task An_admin_edits_the_system_quota_and_sees_every_hosts_capacity()
    {
        await using var server = await LimenTestServer.StartAsync();
        await using var ui = await AdminAsync(server);
        await ui.Page.GotoAsync(ui.Url("/admin/quota"));
        Assert.True(await ui.Page.Locator("#capacity tbody tr").CountAsync() >= 1);
        Assert.Contains("CPUs", await ui.Page.TextContentAsync("#capacity-total"), StringComparison.Ordinal);

        await ui.Page.FillAsync("#Change-max_vms", "777");
        await ui.Page.ClickAsync("#set-system-quota");
        await ui.Page.WaitForSelectorAsync("#quota-done");
        Assert.Equal("777", await ui.Page.TextContentAsync("td[data-limit=max_vms]"));
        Assert.Equal(1, await server.Database.ScalarAsync("SELECT count(*) FROM system_quota WHERE max_vms = 777"));
        await ui.AssertAccessibleAsync();
        await ui.ScreenshotAsync("admin-quota");

        await ui.Page.ClickAsync("#reset-system-quota");
        await ui.Page.WaitForURLAsync(url => url.EndsWith("done=reset", StringComparison.Ordinal));
        Assert.Equal(0, await server.Database.ScalarAsync("SELECT count(*) FROM system_quota WHERE max_vms IS NOT NULL"));
    }

    [Fact]
    public async Task An_admin_terminates_an_open_console_session()
    {
        await using var server = await LimenTestServer.StartAsync();
        var (userId, _) = await server.CreateUserAsync("ui-console");
        // A record no relay holds (the test driver has no VNC server): terminating closes it here.
        var open = await SessionRowAsync(server, userId, ended: false);
        var closed = await SessionRowAsync(server, userId, ended: true);
        await using var ui = await AdminAsync(server);

        await ui.Page.GotoAsync(ui.Url("/admin/sessions"));
        Assert.Equal(1, await ui.Page.Locator($"#sessions-active tr[data-session='{open}']").CountAsync());
        Assert.Equal(1, await ui.Page.Locator($"#sessions-ended tr[data-session='{closed}']").CountAsync());
        Assert.Contains("ui-console", await ui.Page.TextContentAsync($"tr[data-session='{open}']"), StringComparison.Ordinal);
        await ui.AssertAccessibleAsync();
        await ui.ScreenshotAsync("admin-sessions");

        await ui.Page.ClickAsync($"tr[data-session='{open}'] button");
        await ui.Page.WaitForSelectorAsync("#sessions-done");
        Assert.Equal(1, await server.Database.ScalarAsync(
            $"SELECT count(*) FROM console_sessions WHERE id = '{open}' AND ended_at IS NOT NULL AND end_reason = 'admin_terminated'"));
        Assert.Equal(1, await server.Database.ScalarAsync(
            $"SELECT count(*) FROM audit_logs WHERE action = 'console.session.terminate' AND target_id = '{open}' AND result = 'success'"));
        Assert.Equal(1, await ui.Page.Locator($"#sessions-ended tr[data-session='{open}']").CountAsync());
    }

    [Fact]
    public async Task The_alerts_inbox_shows_a_delivered_alert_without_a_reload()
    {
        await using var server = await LimenTestServer.StartAsync(new Dictionary<string, string?> { ["Limen:Alerts:WebhookToken"] = WebhookToken });
        await using var ui = await AdminAsync(server);
        await ui.Page.GotoAsync(ui.Url("/admin/alerts"));
        await ui.Page.WaitForFunctionAsync("() => document.documentElement.dataset.live === 'connected'");
        await ui.Page.EvaluateAsync("() => { window.__sameDocument = true; }");
        const string fingerprint = "ad000000000000a1";

        using (var webhook = server.Client())
        {
            webhook.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", WebhookToken);
            var delivered = await webhook.PostAsync("/api/alerts/webhook",
                new StringContent(AlertWebhookTests.Payload(fingerprint), Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.NoContent, delivered.StatusCode);
        }

        var row = ui.Page.Locator($"tr[data-fingerprint='{fingerprint}']");
        await row.WaitForAsync();
        Assert.True(await ui.Page.EvaluateAsync<bool>("() => window.__sameDocument === true"), "the page was reloaded");
        Assert.Equal("firing", await row.GetAttributeAsync("data-status"));
        Assert.Contains("HighHostDiskUsage", await row.TextContentAsync(), StringComparison.Ordinal);
        Assert.Contains("host-a", await row.TextContentAsync(), StringComparison.Ordinal);
        await ui.AssertAccessibleAsync();
        await ui.ScreenshotAsync("admin-alerts");

        await ui.Page.GotoAsync(ui.Url("/admin/alerts?status=resolved"));
        Assert.Equal(0, await ui.Page.Locator($"tr[data-fingerprint='{fingerprint}']").CountAsync());
    }

    [Fact]
    public async Task The_audit_filters_live_in_the_url()
    {
        await using var server = await LimenTestServer.StartAsync();
        var (id, _) = await server.CreateUserAsync("ui-audited");
        await using var ui = await AdminAsync(server);
        await ui.Page.GotoAsync(ui.Url("/admin/audit"));
        await ui.Page.FillAsync("#f-action", "user.create");
        await ui.Page.SelectOptionAsync("#f-result", "success");
        await ui.Page.ClickAsync("#audit-filters button[type=submit]");
        await ui.Page.WaitForURLAsync(url => url.Contains("action=user.create", StringComparison.Ordinal) && url.Contains("result=success", StringComparison.Ordinal));

        var rows = ui.Page.Locator("#audit tbody tr");
        Assert.True(await rows.CountAsync() >= 1);
        Assert.All(await rows.EvaluateAllAsync<string[]>("rows => rows.map(r => r.dataset.action)"), a => Assert.Equal("user.create", a));
        Assert.Contains(id.ToString(), await ui.Page.TextContentAsync("#audit"), StringComparison.Ordinal);
        await ui.AssertAccessibleAsync();
        await ui.ScreenshotAsync("admin-audit");

        // The same URL opened afresh gives the same filtered view; a window in the future, none.
        await ui.Page.GotoAsync(ui.Page.Url);
        Assert.Equal("user.create", await ui.Page.InputValueAsync("#f-action"));
        await ui.Page.GotoAsync(ui.Url("/admin/audit?action=user.create&from=2999-01-01T00:00"));
        Assert.Equal(0, await rows.CountAsync());
        var bad = await ui.Page.GotoAsync(ui.Url("/admin/audit?from=2030-01-01T00:00&to=2020-01-01T00:00"));
        Assert.Equal(400, bad!.Status);
        Assert.Equal("from must not be after to.", await ui.Page.TextContentAsync("[role=alert]"));

        await using var phone = await AdminAsync(server, UiSession.Phone);
        await phone.Page.GotoAsync(phone.Url("/admin/audit?action=user.create"));
        Assert.True(await phone.Page.EvaluateAsync<bool>("() => document.documentElement.scrollWidth <= window.innerWidth"),
            "the audit page scrolls sideways at 390 px");
        await phone.AssertAccessibleAsync();
        await phone.ScreenshotAsync("admin-audit-phone");
    }

    [Fact]
    public async Task An_image_upload_shows_its_progress_to_100_percent_and_lists_the_image_and_an_image_in_use_cannot_be_deleted()
    {
        await using var server = await LimenTestServer.StartAsync();
        var used = await VmTestKit.RegisterBlankImageAsync(server, "ui-used");
        using var api = server.Client(await server.AdminTokenAsync());
        var vm = (await VmTestKit.CreateVmAsync(api, used, "ui-image-user")).GetProperty("id").GetGuid();
        try
        {
            await UploadAndDeleteAsync(server);
        }
        finally
        {
            // The test driver's domains outlive the server.
            await api.DeleteAsync($"/api/vms/{vm}");
        }
    }

    private async Task UploadAndDeleteAsync(LimenTestServer server)
    {
        await using var ui = await AdminAsync(server);
        await ui.Page.GotoAsync(ui.Url("/admin/images"));
        Assert.Equal(0, await ui.Page.Locator("tr[data-image='ui-used'] button").CountAsync());
        Assert.Contains("1 VM", await ui.Page.TextContentAsync("tr[data-image='ui-used']"), StringComparison.Ordinal);

        await ui.Page.EvaluateAsync("() => { window.__uploads = []; document.addEventListener('limen:upload', e => window.__uploads.push(e.detail)); }");
        await ui.Page.FillAsync("#upload-name", "ui-uploaded");
        await ui.Page.SetInputFilesAsync("#upload-file", new FilePayload { Name = "disk.img", MimeType = "application/octet-stream", Buffer = new byte[4 << 20] });
        await ui.Page.ClickAsync("limen-upload button[type=submit]");
        await ui.Page.Locator("tr[data-image='ui-uploaded']").WaitForAsync();
        var reports = await ui.Page.EvaluateAsync<int[]>("() => window.__uploads.map(u => u.percent)");
        Assert.Equal(100, reports.Max());
        Assert.Equal("done", await ui.Page.EvaluateAsync<string>("() => window.__uploads.at(-1).state"));
        Assert.Equal(1, await server.Database.ScalarAsync($"SELECT count(*) FROM images WHERE name = 'ui-uploaded' AND size_bytes = {4 << 20}"));
        await ui.AssertAccessibleAsync();
        await ui.ScreenshotAsync("admin-images");

        await ui.Page.ClickAsync("tr[data-image='ui-uploaded'] button");
        await ui.Page.WaitForSelectorAsync("#images-done");
        Assert.Equal(0, await server.Database.ScalarAsync("SELECT count(*) FROM images WHERE name = 'ui-uploaded'"));
        Assert.Equal(1, await server.Database.ScalarAsync("SELECT count(*) FROM images WHERE name = 'ui-used'"));
    }

    [Fact]
    public async Task The_backup_history_lists_runs_and_shows_and_serves_a_drills_report()
    {
        await using var server = await LimenTestServer.StartAsync();
        var dir = Directory.CreateTempSubdirectory("limen-test-drill-").FullName;
        try
        {
            var json = Path.Combine(dir, "drill-20261201T100000Z.json");
            await File.WriteAllTextAsync(json, """{"result":"passed","row_counts":[]}""");
            await File.WriteAllTextAsync(Path.ChangeExtension(json, ".md"), "# Restore drill 2026-12-01 10:00:00Z: PASSED\n\nEvery row count matched.");
            var drill = Guid.NewGuid();
            var backup = Guid.NewGuid();
            await using (var connection = new NpgsqlConnection(server.Database.ConnectionString))
            {
                await connection.OpenAsync();
                await using var insert = new NpgsqlCommand("""
                    INSERT INTO backup_runs (id, kind, status, started_at, finished_at, archive_path, archive_size_bytes, report_path, error, hostname) VALUES
                    (@backup, 'backup', 'failed', now() - interval '2 hours', now() - interval '2 hours', NULL, NULL, NULL, 'pg_dump exited with 1', 'ui-host'),
                    (@drill, 'drill', 'succeeded', now() - interval '1 hour', now(), '/var/backups/limen-1.tar', 4096, @report, NULL, 'ui-host')
                    """, connection);
                insert.Parameters.AddWithValue("backup", backup);
                insert.Parameters.AddWithValue("drill", drill);
                insert.Parameters.AddWithValue("report", json);
                await insert.ExecuteNonQueryAsync();
            }

            await using var ui = await AdminAsync(server);
            await ui.Page.GotoAsync(ui.Url("/admin/backups"));
            Assert.Equal(new[] { drill.ToString(), backup.ToString() },
                await ui.Page.Locator("#backup-runs tbody tr").EvaluateAllAsync<string[]>("rows => rows.map(r => r.dataset.run)"));
            Assert.Contains("pg_dump exited with 1", await ui.Page.TextContentAsync($"tr[data-run='{backup}']"), StringComparison.Ordinal);
            await ui.AssertAccessibleAsync();
            await ui.ScreenshotAsync("admin-backups");

            await ui.Page.ClickAsync($"tr[data-run='{drill}'] a");
            await ui.Page.WaitForSelectorAsync("#drill-report");
            Assert.Contains("Every row count matched.", await ui.Page.TextContentAsync("#drill-report"), StringComparison.Ordinal);
            await ui.AssertAccessibleAsync();
            var download = await ui.Page.EvaluateAsync<string>("async () => (await (await fetch(document.getElementById('drill-download').href)).json()).result");
            Assert.Equal("passed", download);

            var missing = await ui.Page.GotoAsync(ui.Url($"/admin/backups/{backup}"));
            Assert.Equal(404, missing!.Status);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static async Task<Guid> SessionRowAsync(LimenTestServer server, Guid userId, bool ended)
    {
        var id = Guid.NewGuid();
        await using var connection = new NpgsqlConnection(server.Database.ConnectionString);
        await connection.OpenAsync();
        await using var insert = new NpgsqlCommand(
            "INSERT INTO console_sessions (id, user_id, vm_id, started_at, last_activity_at, ended_at, end_reason, client_ip, user_agent) " +
            "VALUES (@id, @user, @vm, now(), now(), CASE WHEN @ended THEN now() END, CASE WHEN @ended THEN 'client_closed' END, '127.0.0.1', 'admin-pages')",
            connection);
        insert.Parameters.AddWithValue("id", id);
        insert.Parameters.AddWithValue("user", userId);
        insert.Parameters.AddWithValue("vm", Guid.NewGuid());
        insert.Parameters.AddWithValue("ended", ended);
        await insert.ExecuteNonQueryAsync();
        return id;
    }
}
