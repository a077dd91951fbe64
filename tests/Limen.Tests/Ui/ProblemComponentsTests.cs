using Bunit;
using Limen.Features.Outcomes;
using Limen.Ui.Components;

namespace Limen.Tests.Ui;

/// <summary>bUnit: a failure shows where it belongs, in the API's words.</summary>
public sealed class ProblemComponentsTests : BunitContext
{
    public static TheoryData<Failure, string, bool> FieldCases => new()
    {
        { new Invalid("name", "name must be 1 to 63 characters."), "name", true },
        { new Invalid("name", "name must be 1 to 63 characters."), "vcpus", false },
        { new Conflict("A VM named web already exists."), "name", false },
    };

    [Theory]
    [MemberData(nameof(FieldCases))]
    public void A_field_problem_shows_only_beside_its_own_field(Failure failure, string field, bool shown)
    {
        var cut = Render<FieldProblem>(p => p.Add(x => x.Failure, failure).Add(x => x.Field, field));
        Assert.Equal(shown, cut.FindAll($"#problem-{field}").Count == 1);
        if (shown)
        {
            Assert.Equal(failure.Detail(), cut.Find($"#problem-{field}").TextContent);
        }
    }

    [Fact]
    public void The_banner_words_a_quota_denial_as_the_api_does_and_leaves_field_problems_to_the_fields()
    {
        var quota = new QuotaDenied("user", "vcpus", 4, 2, 4);
        var banner = Render<ProblemBanner>(p => p.Add(x => x.Failure, quota).Add(x => x.FieldsShown, true));
        Assert.Equal("This needs 4 more vcpus; 2 of your limit of 4 are in use.", banner.Find("[role=alert]").TextContent);

        var field = Render<ProblemBanner>(p => p.Add(x => x.Failure, new Invalid("name", "bad")).Add(x => x.FieldsShown, true));
        Assert.Empty(field.FindAll("[role=alert]"));
        var unshown = Render<ProblemBanner>(p => p.Add(x => x.Failure, new Invalid("name", "bad")));
        Assert.Equal("bad", unshown.Find("[role=alert]").TextContent);
    }
}
