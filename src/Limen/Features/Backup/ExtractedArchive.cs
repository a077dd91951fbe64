namespace Limen.Features.Backup;

/// <summary>A verified archive unpacked into a private temporary folder, removed on dispose.</summary>
/// <param name="extracted">The files written out; the others were checked but not written (BackupArchive.OpenAsync's extract).</param>
public sealed class ExtractedArchive(string archivePath, long archiveSize, string dir, BackupManifest manifest, IReadOnlySet<string> extracted) : IDisposable
{
    public string ArchivePath { get; } = archivePath;
    public long ArchiveSize { get; } = archiveSize;
    public string Dir { get; } = dir;
    public BackupManifest Manifest { get; } = manifest;

    public string PathOf(string archivePathOfFile) =>
        extracted.Contains(archivePathOfFile)
            ? Path.Combine(Dir, archivePathOfFile)
            : throw new InvalidOperationException($"{archivePathOfFile} was verified but not extracted; list it in the files the caller reads.");

    public bool Contains(string archivePathOfFile) => Manifest.Files.Any(f => f.Path == archivePathOfFile);

    public void Dispose()
    {
        if (Directory.Exists(Dir))
        {
            Directory.Delete(Dir, recursive: true);
        }
    }
}
