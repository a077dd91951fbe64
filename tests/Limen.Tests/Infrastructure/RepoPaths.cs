namespace Limen.Tests.Infrastructure;

public static class RepoPaths
{
    /// <summary>The checkout root: the nearest folder above the test binaries holding Limen.slnx.</summary>
    public static string Root { get; } = Find();

    /// <summary>Where tests keep evidence (screenshots, payloads): artifacts/ in the checkout.</summary>
    public static string Artifacts(string name)
    {
        var dir = Path.Combine(Root, "artifacts", name);
        Directory.CreateDirectory(dir);
        return dir;
    }

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Limen.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("Limen.slnx not found above " + AppContext.BaseDirectory);
    }
}
