using System.Security.Cryptography;
using Limen.Data;
using Limen.Features.Audit;
using Limen.Web;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace Limen.Features.Images;

/// <summary>What clients see of an image: never its file name or path.</summary>
public sealed record ImageResponse(Guid Id, string Name, string Kind, string Format, long SizeBytes, long VirtualSizeBytes, string Sha256, DateTimeOffset CreatedAt)
{
    public static ImageResponse From(Image i) => new(i.Id, i.Name, i.Kind, i.Format, i.SizeBytes, i.VirtualSizeBytes, i.Sha256, i.CreatedAt);
}

public sealed record RegisterImageRequest(string Name, string FileName, string Kind);

public sealed record UploadQuery([property: FromQuery(Name = "name")] string? Name, [property: FromQuery(Name = "kind")] string? Kind);

public static class ImageEndpoints
{
    public static IEndpointRouteBuilder MapImages(this IEndpointRouteBuilder routes)
    {
        routes.MapGet("/api/images", List).WithTags("Images");
        var admin = routes.MapGroup("/api/admin/images").WithTags("Images").RequireAuthorization(Policies.Admin);
        admin.MapPost("/", Register);
        admin.MapPost("/upload", Upload).Accepts<Stream>("application/octet-stream");
        admin.MapDelete("/{id:guid}", Delete);
        return routes;
    }

    private static async Task<Ok<List<ImageResponse>>> List(LimenDbContext db, CancellationToken cancellationToken)
    {
        var images = await db.Images.AsNoTracking().OrderBy(i => i.Name).ToListAsync(cancellationToken);
        return TypedResults.Ok(images.ConvertAll(ImageResponse.From));
    }

    /// <summary>Registers a file that an operator placed in the image directory.</summary>
    private static async Task<Results<Created<ImageResponse>, ProblemHttpResult>> Register(
        RegisterImageRequest request, LimenDbContext db, ImageStore store, AuditTrail audit, TimeProvider clock, CancellationToken cancellationToken)
    {
        if (NameProblem(request.Name) is { } nameProblem)
        {
            return Problems.Invalid("name", nameProblem);
        }

        if (store.Resolve(request.FileName) is not { } path)
        {
            return Problems.Invalid("file_name", "file_name must name a regular file inside the image directory.");
        }

        var (format, size, virtualSize, sha256) = await ImageStore.DescribeAsync(path, cancellationToken);
        if (ImageStore.KindProblem(request.Kind, format) is { } kindProblem)
        {
            return Problems.Invalid("kind", kindProblem);
        }

        return await SaveAsync(db, audit, clock, new Image
        {
            Id = Guid.NewGuid(), Name = request.Name, Kind = request.Kind, Format = format, FileName = request.FileName,
            SizeBytes = size, VirtualSizeBytes = virtualSize, Sha256 = sha256,
        }, "image.register", cancellationToken);
    }

    /// <summary>Streams the body into the image directory (size-limited, hashed on the way), then registers it.</summary>
    private static async Task<Results<Created<ImageResponse>, ProblemHttpResult>> Upload(
        [AsParameters] UploadQuery query, HttpContext http, LimenDbContext db, ImageStore store, AuditTrail audit, TimeProvider clock,
        CancellationToken cancellationToken)
    {
        var name = query.Name ?? "";
        var kind = query.Kind ?? "";
        if (NameProblem(name) is { } nameProblem)
        {
            return Problems.Invalid("name", nameProblem);
        }

        if (kind is not (ImageKinds.Disk or ImageKinds.Iso))
        {
            return Problems.Invalid("kind", "kind must be 'disk' or 'iso'.");
        }

        if (http.Request.ContentLength > store.MaxUploadBytes)
        {
            return TooLarge(store);
        }

        http.Features.GetRequiredFeature<IHttpMaxRequestBodySizeFeature>().MaxRequestBodySize = store.MaxUploadBytes;
        var fileName = $"upload-{Guid.NewGuid():N}.{(kind == ImageKinds.Iso ? "iso" : "img")}";
        var path = Path.Combine(store.Directory, fileName);
        try
        {
            string sha256;
            long size;
            await using (var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write))
            using (var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
            {
                var buffer = new byte[81920];
                int read;
                while ((read = await http.Request.Body.ReadAsync(buffer, cancellationToken)) > 0)
                {
                    hash.AppendData(buffer, 0, read);
                    await file.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
                }

                sha256 = Convert.ToHexStringLower(hash.GetHashAndReset());
                size = file.Length;
            }

            var info = await Vms.QemuImg.InfoAsync(path, cancellationToken);
            if (ImageStore.KindProblem(kind, info.Format) is { } kindProblem)
            {
                File.Delete(path);
                return Problems.Invalid("kind", kindProblem);
            }

            var result = await SaveAsync(db, audit, clock, new Image
            {
                Id = Guid.NewGuid(), Name = name, Kind = kind, Format = info.Format, FileName = fileName,
                SizeBytes = size, VirtualSizeBytes = info.VirtualSizeBytes, Sha256 = sha256,
            }, "image.upload", cancellationToken);
            if (result.Result is not Created<ImageResponse>)
            {
                File.Delete(path);
            }

            return result;
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            File.Delete(path);
            return TooLarge(store);
        }
        catch
        {
            File.Delete(path);
            throw;
        }
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> Delete(Guid id, ImageCatalog images, CancellationToken cancellationToken) =>
        (await images.DeleteAsync(id, cancellationToken)).ToNoContent();

    private static async Task<Results<Created<ImageResponse>, ProblemHttpResult>> SaveAsync(
        LimenDbContext db, AuditTrail audit, TimeProvider clock, Image image, string action, CancellationToken cancellationToken)
    {
        image.CreatedAt = clock.GetUtcNow();
        db.Images.Add(image);
        try
        {
            await db.SaveChangesAsync(cancellationToken);
        }
        catch (DbUpdateException e) when (e.IsUniqueViolation())
        {
            await audit.RecordAsync(new AuditEvent(action, AuditResults.Failure, "image", null, "duplicate", new { name = image.Name }), cancellationToken);
            return Problems.ConflictProblem("An image with this name or file is already registered.");
        }

        await audit.RecordAsync(new AuditEvent(action, AuditResults.Success, "image", image.Id.ToString(),
            Details: new { name = image.Name, kind = image.Kind, sha256 = image.Sha256 }), cancellationToken);
        return TypedResults.Created($"/api/images/{image.Id}", ImageResponse.From(image));
    }

    private static string? NameProblem(string name) =>
        name.Length is 0 or > 64 || TextInput.NameProblem(name) is not null
            ? "name must be 1 to 64 printable characters on one line, without whitespace at either end."
            : null;

    private static ProblemHttpResult TooLarge(ImageStore store) =>
        Problems.Create(413, Problems.PayloadTooLarge, "Image too large", $"Uploads are limited to {store.MaxUploadBytes} bytes.");
}
