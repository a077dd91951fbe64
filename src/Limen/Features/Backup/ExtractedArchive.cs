namespace Limen.Features.Backup;

/// <summary>A verified archive unpacked into a private temporary folder, removed on dispose.</summary>
public sealed class ExtractedArchive(string archivePath, long archiveSize, string dir, BackupManifest manifest) : IDisposable
{
    public string ArchivePath { get; } = archivePath;
    public long ArchiveSize { get; } = archiveSize;
    public string Dir { get; } = dir;
    public BackupManifest Manifest { get; } = manifest;

    public string PathOf(string archivePathOfFile) => Path.Combine(Dir, archivePathOfFile);

    public bool Contains(string archivePathOfFile) => Manifest.Files.Any(f => f.Path == archivePathOfFile);

    public void Dispose()
    {
        if (Directory.Exists(Dir))
        {
            Directory.Delete(Dir, recursive: true);
        }
    }
}
