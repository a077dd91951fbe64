using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;

namespace Limen.Data;

/// <summary>Lets `dotnet ef migrations add` build the model without a database or a host.</summary>
public sealed class DesignTimeDbContextFactory : IDesignTimeDbContextFactory<LimenDbContext>
{
    public LimenDbContext CreateDbContext(string[] args) =>
        new(new DbContextOptionsBuilder<LimenDbContext>()
            .UseNpgsql("Host=localhost;Database=limen_design")
            .UseSnakeCaseNamingConvention()
            .Options);
}
