using Microsoft.EntityFrameworkCore;

namespace Limen.Data;

public static class DbErrors
{
    /// <summary>The save broke a unique index (<paramref name="index"/>, when given): a name already taken, a duplicate snapshot name, …</summary>
    public static bool IsUniqueViolation(this DbUpdateException exception, string? index = null) =>
        exception.InnerException is Npgsql.PostgresException { SqlState: Npgsql.PostgresErrorCodes.UniqueViolation } unique
        && (index is null || unique.ConstraintName == index);
}
