using Microsoft.AspNetCore.StaticFiles;
using Microsoft.Extensions.FileProviders;

namespace Limen.Features.RemoteConsole;

/// <summary>
/// The browser console: a static page and its script (src/Limen/Web/console), with noVNC from npm
/// (@novnc/novnc, installed by the build), copied to &lt;app&gt;/console.
/// </summary>
public static class ConsolePage
{
    private static readonly PhysicalFileProvider Files = new(Path.Combine(AppContext.BaseDirectory, "console"));
    private static readonly FileExtensionContentTypeProvider ContentTypes = new();

    public static IResult Page(HttpContext http)
    {
        var page = Files.GetFileInfo("index.html");
        if (!page.Exists)
        {
            return Web.Problems.Create(404, Web.Problems.NotFound, "Not found", "The console page is not installed (build src/Limen).");
        }

        var headers = http.Response.Headers;
        // Only our own scripts; the WebSocket only to this host; never framed (clickjacking a console).
        headers.ContentSecurityPolicy =
            $"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
            $"connect-src 'self' ws://{http.Request.Host} wss://{http.Request.Host}; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
        headers.XFrameOptions = "DENY";
        headers["Referrer-Policy"] = "no-referrer";
        headers.CacheControl = "no-store";
        return TypedResults.PhysicalFile(page.PhysicalPath!, "text/html; charset=utf-8");
    }

    public static IResult Asset(string path)
    {
        // The provider refuses paths that climb out of its root.
        var file = Files.GetFileInfo(path);
        if (!file.Exists || file.IsDirectory || !ContentTypes.TryGetContentType(path, out var contentType))
        {
            return Web.Problems.NotFoundProblem("The file");
        }

        return TypedResults.PhysicalFile(file.PhysicalPath!, contentType, lastModified: file.LastModified);
    }
}
