using Limen.Web;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Limen.Features.Settings;

public static class SettingsEndpoints
{
    public static IEndpointRouteBuilder MapSettings(this IEndpointRouteBuilder routes)
    {
        routes.MapGet("/api/admin/settings", Get).WithTags("Settings").RequireAuthorization(Policies.Admin);
        routes.MapPut("/api/admin/settings", Update).WithTags("Settings").RequireAuthorization(Policies.Admin);
        return routes;
    }

    private static async Task<Ok<SettingsView>> Get(SettingsService settings, CancellationToken cancellationToken) =>
        TypedResults.Ok(await settings.GetAsync(cancellationToken));

    private static async Task<Ok<SettingsView>> Update(SettingsUpdateRequest request, SettingsService settings, CancellationToken cancellationToken) =>
        TypedResults.Ok(await settings.UpdateAsync(request, cancellationToken));
}
