using Limen.Web;

namespace Limen.Tests.Input;

/// <summary>The one text rule and the words problem details use, table-driven.</summary>
public sealed class TextInputRuleTests
{
    public static TheoryData<string, bool> Texts => new()
    {
        { "plain words", true },
        { "two\nlines\twith a tab\r\n", true },
        { "emoji \U0001F600 pair", true },
        { "", true },
        { "nul\0inside", false },
        { "escape\u001b[31m", false },
        { "bell\u0007", false },
        { "delete\u007f", false },
        { "c1 control\u0085", false },
    };

    // Built here, not in theory data: xunit replaces lone surrogates in serialized theory arguments.
    [Fact]
    public void Lone_surrogates_are_refused()
    {
        foreach (var text in new[] { "high \ud800 alone", "low \udc00 alone", "ends high \ud83d", "\ude00\ud83d reversed" })
        {
            Assert.NotNull(TextInput.Problem(text));
        }
    }

    [Theory]
    [MemberData(nameof(Texts))]
    public void Free_text_refuses_control_characters_and_lone_surrogates_but_keeps_lines_and_tabs(string text, bool acceptable) =>
        Assert.Equal(acceptable, TextInput.Problem(text) is null);

    public static TheoryData<string, bool> Names => new()
    {
        { "web-01", true },
        { "Ubuntu 24.04 server", true },
        { "trailing\n", false },
        { "two\nlines", false },
        { "tab\tinside", false },
        { " leading", false },
        { "trailing ", false },
        { "nul\0", false },
    };

    [Theory]
    [MemberData(nameof(Names))]
    public void Names_are_single_lines_without_whitespace_at_either_end(string name, bool acceptable) =>
        Assert.Equal(acceptable, TextInput.NameProblem(name) is null);

    public static TheoryData<string, string> Kinds => new()
    {
        { "Nullable<int>", "an integer" },
        { "int?", "an integer" },
        { "System.Int32", "an integer" },
        { "System.Nullable`1[System.Int64]", "an integer" },
        { "System.Collections.Generic.IReadOnlyList`1[System.String]", "an array" },
        { "System.String", "a string" },
        { "System.Boolean", "true or false" },
        { "Nullable<Guid>", "a UUID" },
        { "System.Guid", "a UUID" },
        { "Nullable<DateTimeOffset>", "an ISO 8601 date-time" },
        { "Limen.Features.Vms.CreateVmRequest", "an object" },
    };

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Dotnet_type_names_are_told_as_json_kinds(string typeName, string kind) =>
        Assert.Equal(kind, ApiLanguage.KindOf(typeName));

    [Theory]
    [InlineData(1, 50, null)]
    [InlineData(PageRequest.MaxPage, PageRequest.MaxPageSize, null)]
    [InlineData(0, 50, "page")]
    [InlineData(int.MaxValue, 50, "page")]
    [InlineData(int.MinValue, 50, "page")]
    [InlineData(1, 0, "page_size")]
    [InlineData(1, int.MaxValue, "page_size")]
    public void Paging_is_bounded_so_the_offset_cannot_overflow_and_names_the_parameter_at_fault(int page, int size, string? field)
    {
        var request = new PageRequest(page, size);
        Assert.Equal(field, request.Validate()?.Field);
        if (field is null)
        {
            Assert.True(request.Skip >= 0);
        }
    }
}
