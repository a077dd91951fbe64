using CsCheck;

namespace Limen.Tests.Hostile;

/// <summary>
/// Property: for every mutating endpoint of the application, 200 generated requests that are
/// wrong for sure (and maybe a little more) are each refused with a 4xx problem+json carrying
/// X-Request-Id, never a 5xx, and change nothing — no table but the audit trail, no domain of the world.
/// </summary>
public sealed class HostileInputTests(HostileWorld world) : IClassFixture<HostileWorld>
{
    public const int CasesPerEndpoint = 200;

    public static TheoryData<string> Recipes => new(HostileCases.All.Select(r => r.Key));

    [Fact]
    public void Every_mutating_endpoint_has_a_recipe_and_every_recipe_a_real_endpoint()
    {
        var mutating = world.Endpoints.Where(e => e.IsMutating).Select(e => e.Key).ToHashSet();
        var recipes = HostileCases.All.Select(r => r.Key).ToList();
        var missing = mutating.Where(k => !recipes.Contains(k)).ToList();
        var stale = recipes.Where(k => !mutating.Contains(k)).ToList();
        Assert.True(missing.Count == 0, "Mutating endpoints without hostile-input recipe (add one in Hostile/HostileCases.cs): " + string.Join(", ", missing));
        Assert.True(stale.Count == 0, "Recipes for endpoints that no longer exist: " + string.Join(", ", stale));
        Assert.Equal(recipes.Count, recipes.Distinct().Count());
    }

    [Theory]
    [MemberData(nameof(Recipes))]
    public async Task Hostile_requests_are_refused_and_change_nothing(string key)
    {
        var recipe = HostileCases.All.Single(r => r.Key == key);
        var endpoint = world.Endpoints.SingleOrDefault(e => e.Key == key) ?? throw new InvalidOperationException($"{key} is not in the endpoint table");
        var caller = recipe.Caller(world);
        var failures = new FailureClasses(key);
        await world.ResetAsync();
        var before = await world.CaptureAsync();
        await recipe.Cases(world, endpoint).SampleAsync(async hostile =>
        {
            var exchange = await Exchange.SendAsync(caller, hostile.Request);
            var after = await world.CaptureAsync();
            var violations = exchange.RejectedByKestrel ? new List<string>() : exchange.ContractViolations().ToList();
            if (exchange.Status < 400 && !recipe.Allowed.Contains(exchange.Status))
            {
                violations.Add($"accepted with {exchange.Status}");
            }

            var changes = after.ChangesSince(before);
            violations.AddRange(changes.Select(c => "changed " + c));
            // Compare the next case with what is, so one change is reported once.
            before = after;
            failures.Record(hostile, exchange, violations);
        }, iter: CasesPerEndpoint, threads: 1);

        Assert.Equal(CasesPerEndpoint, failures.Cases);
        failures.AssertNone();
    }
}
