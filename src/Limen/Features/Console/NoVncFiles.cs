using Microsoft.AspNetCore.StaticFiles;
using Microsoft.Extensions.FileProviders;

namespace Limen.Features.RemoteConsole;

/// <summary>
/// noVNC (npm @novnc/novnc, installed by the build from Web/console/package-lock.json and copied to
/// &lt;app&gt;/novnc) under /novnc/: the console page's script imports it only when a console is
/// shown, so the other pages never load it. Served by limen itself, never from a CDN.
/// </summary>
public static class NoVncFiles
{
    private static readonly PhysicalFileProvider Files = new(Path.Combine(AppContext.BaseDirectory, "novnc"));
    private static readonly FileExtensionContentTypeProvider ContentTypes = new();

    public static IResult Get(string path)
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
