using Microsoft.EntityFrameworkCore;

namespace Limen.Data;

public static class DbErrors
{
    /// <summary>The save broke a unique index (<paramref name="index"/>, when given): a name already taken, a duplicate snapshot name, …</summary>
    public static bool IsUniqueViolation(this DbUpdateException exception, string? index = null) =>
        exception.InnerException is Npgsql.PostgresException { SqlState: Npgsql.PostgresErrorCodes.UniqueViolation } unique
        && (index is null || unique.ConstraintName == index);

    /// <summary>The save removed (or pointed at) a row that another row's foreign key needs: a host that has VMs.</summary>
    public static bool IsForeignKeyViolation(this DbUpdateException exception) =>
        exception.InnerException is Npgsql.PostgresException { SqlState: Npgsql.PostgresErrorCodes.ForeignKeyViolation };
}
