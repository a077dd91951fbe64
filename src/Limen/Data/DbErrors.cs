using Microsoft.EntityFrameworkCore;

namespace Limen.Data;

public static class DbErrors
{
    /// <summary>The save broke a unique index: a name already taken, a duplicate snapshot name, …</summary>
    public static bool IsUniqueViolation(this DbUpdateException exception) =>
        exception.InnerException is Npgsql.PostgresException { SqlState: Npgsql.PostgresErrorCodes.UniqueViolation };
}
