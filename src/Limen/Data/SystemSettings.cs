namespace Limen.Data;

/// <summary>
/// What admins change at run time (GET/PUT /api/admin/settings): one row, id 1, written by the
/// migration that made the table. Every server reads it from the database when it needs a value and
/// keeps no copy, so replicas never disagree about a setting, not even for a moment.
/// </summary>
public sealed class SystemSettings
{
    public const int SingletonId = 1;

    public int Id { get; set; }

    /// <summary>Whether anybody may register an account (which then waits for an admin's approval). Off unless an admin opens it.</summary>
    public bool RegistrationOpen { get; set; }

    public DateTimeOffset UpdatedAt { get; set; }
}
