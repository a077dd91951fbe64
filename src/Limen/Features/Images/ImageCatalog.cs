using Limen.Data;
using Limen.Features.Audit;
using Limen.Features.Outcomes;
using Microsoft.EntityFrameworkCore;

namespace Limen.Features.Images;

/// <summary>An image with the number of VMs that boot from it or hold it in their CD-ROM drive.</summary>
public sealed record ImageInUse(ImageResponse Image, int UsedBy);

/// <summary>The registered images as the API and the admin page change them (one implementation for both).</summary>
public sealed class ImageCatalog(LimenDbContext db, ImageStore store, AuditTrail audit)
{
    /// <summary>Every image by name, with how many VMs use it (an image in use cannot be deleted).</summary>
    public async Task<List<ImageInUse>> ListWithUseAsync(CancellationToken cancellationToken)
    {
        var images = await db.Images.AsNoTracking().OrderBy(i => i.Name).ToListAsync(cancellationToken);
        var boots = await db.Vms.Where(v => v.ImageId != null).GroupBy(v => v.ImageId!.Value)
            .Select(g => new { g.Key, Count = g.Count() }).ToListAsync(cancellationToken);
        var mounts = await db.Vms.Where(v => v.CdromImageId != null && v.CdromImageId != v.ImageId).GroupBy(v => v.CdromImageId!.Value)
            .Select(g => new { g.Key, Count = g.Count() }).ToListAsync(cancellationToken);
        var used = boots.Concat(mounts).GroupBy(g => g.Key).ToDictionary(g => g.Key, g => g.Sum(x => x.Count));
        return images.ConvertAll(i => new ImageInUse(ImageResponse.From(i), used.GetValueOrDefault(i.Id)));
    }

    /// <summary>Deletes the image's row and file; refused while any VM uses it. Null when done.</summary>
    public async Task<Failure?> DeleteAsync(Guid id, CancellationToken cancellationToken)
    {
        var image = await db.Images.FirstOrDefaultAsync(i => i.Id == id, cancellationToken);
        if (image is null)
        {
            return new NotFound("The image");
        }

        if (await db.Vms.AnyAsync(v => v.ImageId == id || v.CdromImageId == id, cancellationToken))
        {
            await audit.RecordAsync(new AuditEvent("image.delete", AuditResults.Failure, "image", id.ToString(), "in_use"), cancellationToken);
            return new Conflict("The image is used by at least one VM.");
        }

        db.Images.Remove(image);
        await db.SaveChangesAsync(cancellationToken);
        File.Delete(store.PathOf(image));
        await audit.RecordAsync(new AuditEvent("image.delete", AuditResults.Success, "image", id.ToString(), Details: new { name = image.Name }), cancellationToken);
        return null;
    }
}
