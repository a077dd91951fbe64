namespace Limen.Hosting;

/// <summary>
/// The state folder and its subfolders: created 0711 — others may pass through (QEMU, running as
/// libvirt-qemu, must reach VM disks inside; PostgreSQL its data folder) but not list them. Secret
/// files are written 0600 before any byte lands.
/// </summary>
public static class StateDirectory
{
    private const UnixFileMode Traversable = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
        | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;

    public static string Ensure(string path)
    {
        var full = Path.GetFullPath(path);
        if (!Directory.Exists(full))
        {
            Directory.CreateDirectory(full, Traversable);
        }

        return full;
    }

    /// <summary>A subfolder of the state directory (or an explicitly configured folder), created if missing.</summary>
    public static string Sub(string stateDir, string? configured, string name) =>
        Ensure(string.IsNullOrWhiteSpace(configured) ? Path.Combine(Ensure(stateDir), name) : configured);

    public static void WriteSecretFile(string path, string content)
    {
        var temporary = path + ".tmp";
        using (var stream = new FileStream(temporary, new FileStreamOptions
        {
            Mode = FileMode.Create,
            Access = FileAccess.Write,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        }))
        using (var writer = new StreamWriter(stream))
        {
            writer.Write(content);
        }

        File.SetUnixFileMode(temporary, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.Move(temporary, path, overwrite: true);
    }
}
