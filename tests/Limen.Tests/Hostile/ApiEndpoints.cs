using System.Reflection;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Routing.Patterns;
using Microsoft.Extensions.DependencyInjection;

namespace Limen.Tests.Hostile;

/// <summary>A query-string parameter an endpoint binds, with the CLR type it binds to.</summary>
public sealed record QueryParameter(string Name, Type Type);

/// <summary>
/// One row of the server's real endpoint table: an HTTP method (or "*" for an endpoint mapped
/// without one, such as the console WebSocket) and the route pattern exactly as routing holds it.
/// </summary>
public sealed record ApiEndpoint(string Method, string Pattern, RouteEndpoint Endpoint)
{
    public const string AnyMethod = "*";

    public string Key => $"{Method} {Pattern}";

    public IReadOnlyList<string> RouteParameters => Endpoint.RoutePattern.Parameters.Select(p => p.Name).ToList();

    public bool IsMutating => Method is "POST" or "PUT" or "PATCH" or "DELETE" or AnyMethod;

    /// <summary>True when the endpoint binds a request body (minimal APIs declare it as accepts-metadata).</summary>
    public bool AcceptsBody => Endpoint.Metadata.GetMetadata<IAcceptsMetadata>() is not null;

    /// <summary>
    /// The query parameters the handler binds, read from its parameters as the framework binds them:
    /// [FromQuery] (also inside [AsParameters] records) and simple-typed parameters that no route
    /// value fills.
    /// </summary>
    public IReadOnlyList<QueryParameter> QueryParameters
    {
        get
        {
            var handler = Endpoint.Metadata.GetMetadata<MethodInfo>();
            if (handler is null)
            {
                return [];
            }

            var route = RouteParameters.ToHashSet(StringComparer.OrdinalIgnoreCase);
            return handler.GetParameters().SelectMany(p => FromParameter(p, route)).ToList();
        }
    }

    public override string ToString() => Key;

    /// <summary>
    /// The path with each route parameter replaced by its value, inserted as given (callers escape,
    /// or deliberately do not); an optional parameter without a value is left out.
    /// </summary>
    public string Path(IReadOnlyDictionary<string, string> values)
    {
        var segments = new List<string>();
        foreach (var segment in Endpoint.RoutePattern.PathSegments)
        {
            var text = new System.Text.StringBuilder();
            foreach (var part in segment.Parts)
            {
                text.Append(part switch
                {
                    RoutePatternLiteralPart literal => literal.Content,
                    RoutePatternSeparatorPart separator => separator.Content,
                    RoutePatternParameterPart parameter => values.TryGetValue(parameter.Name, out var value) ? value
                        : parameter.IsOptional ? ""
                        : throw new InvalidOperationException($"{Key}: no value for route parameter '{parameter.Name}'"),
                    _ => throw new InvalidOperationException($"{Key}: unknown route part {part.GetType().Name}"),
                });
            }

            if (text.Length > 0)
            {
                segments.Add(text.ToString());
            }
        }

        return "/" + string.Join("/", segments) + (Pattern.EndsWith('/') && segments.Count > 0 ? "/" : "");
    }

    private static IEnumerable<QueryParameter> FromParameter(ParameterInfo parameter, HashSet<string> route)
    {
        if (parameter.GetCustomAttribute<AsParametersAttribute>() is not null)
        {
            foreach (var property in parameter.ParameterType.GetProperties(BindingFlags.Public | BindingFlags.Instance))
            {
                if (property.GetCustomAttributes().OfType<IFromQueryMetadata>().FirstOrDefault() is { } fromQuery)
                {
                    yield return new QueryParameter(fromQuery.Name ?? property.Name, property.PropertyType);
                }
            }

            yield break;
        }

        var attributes = parameter.GetCustomAttributes().ToList();
        if (attributes.OfType<IFromQueryMetadata>().FirstOrDefault() is { } query)
        {
            yield return new QueryParameter(query.Name ?? parameter.Name!, parameter.ParameterType);
        }
        else if (!attributes.Any(a => a is IFromRouteMetadata or IFromBodyMetadata or IFromHeaderMetadata or IFromServiceMetadata or IFromFormMetadata)
            && IsSimple(parameter.ParameterType) && !route.Contains(parameter.Name!))
        {
            yield return new QueryParameter(parameter.Name!, parameter.ParameterType);
        }
    }

    private static bool IsSimple(Type type)
    {
        var t = Nullable.GetUnderlyingType(type) ?? type;
        return t.IsPrimitive || t.IsEnum || t == typeof(string) || t == typeof(Guid) || t == typeof(decimal)
            || t == typeof(DateTime) || t == typeof(DateTimeOffset) || t == typeof(DateOnly) || t == typeof(TimeSpan);
    }
}

public static class ApiEndpoints
{
    /// <summary>Every route endpoint of the running application, one row per HTTP method.</summary>
    public static IReadOnlyList<ApiEndpoint> Read(IServiceProvider services) =>
        services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .SelectMany(e => (e.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods is { Count: > 0 } methods ? methods : [ApiEndpoint.AnyMethod])
                .Select(m => new ApiEndpoint(m, e.RoutePattern.RawText ?? "", e)))
            .OrderBy(e => e.Pattern, StringComparer.Ordinal).ThenBy(e => e.Method, StringComparer.Ordinal)
            .ToList();
}
