using Limen.Tests.Infrastructure;
using Npgsql;

namespace Limen.Tests.Vms;

/// <summary>
/// vm_counts (the totals of VM lists) is kept by triggers on vms: after any mix of inserts,
/// deletes, owner changes and a truncate it equals counting the rows, owner by owner.
/// </summary>
public sealed class VmCountTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    /// <summary>Owners whose count differs from counting their rows (owners at zero may keep a row).</summary>
    private const string Drift = """
        SELECT (SELECT count(*) FROM (
                    SELECT owner_id, count(*)::int AS vms FROM vms GROUP BY owner_id
                    EXCEPT SELECT owner_id, vms FROM vm_counts WHERE vms > 0) AS missing)
             + (SELECT count(*) FROM (
                    SELECT owner_id, vms FROM vm_counts WHERE vms > 0
                    EXCEPT SELECT owner_id, count(*)::int FROM vms GROUP BY owner_id) AS extra)
        """;

    private TestDatabase Database => fixture.Server.Database;

    [Fact]
    public async Task Counts_follow_inserts_deletes_owner_changes_and_truncate()
    {
        await Execute("""
            INSERT INTO users (id, username, password_hash, role, disabled, created_at, updated_at)
            SELECT gen_random_uuid(), 'count' || i, 'x', 'user', false, now(), now() FROM generate_series(1, 3) AS i;
            INSERT INTO hosts (id, name, uri, console_address, created_at)
            VALUES (gen_random_uuid(), 'counted', 'test:///counted', '127.0.0.1', now());
            INSERT INTO vms (id, name, owner_id, host_id, boot_order, vcpus, memory_mb, disk_gb, state, mac_address, created_at, updated_at)
            SELECT gen_random_uuid(), 'c-' || i, (SELECT id FROM users WHERE username = 'count' || (1 + i % 3)),
                   (SELECT id FROM hosts WHERE name = 'counted'), 'hd', 1, 64, 1, 'stopped', '52:54:02:00:00:' || lpad(to_hex(i), 2, '0'), now(), now()
            FROM generate_series(1, 30) AS i;
            """);
        Assert.Equal(0, await Database.ScalarAsync(Drift));
        Assert.Equal(10, await Database.ScalarAsync("SELECT vms FROM vm_counts JOIN users ON users.id = owner_id WHERE username = 'count1'"));

        await Execute("DELETE FROM vms WHERE name IN ('c-1', 'c-2', 'c-3', 'c-4')");
        Assert.Equal(0, await Database.ScalarAsync(Drift));

        // An owner change moves the VMs from one count to the other; an update of anything else moves nothing.
        await Execute("UPDATE vms SET owner_id = (SELECT id FROM users WHERE username = 'count1') WHERE name LIKE 'c-%' AND name < 'c-2'");
        await Execute("UPDATE vms SET name = name || 'x', owner_id = owner_id WHERE name LIKE 'c-2%'");
        Assert.Equal(0, await Database.ScalarAsync(Drift));

        // In one transaction that rolls back, nothing changes.
        await using (var connection = new NpgsqlConnection(Database.ConnectionString))
        {
            await connection.OpenAsync();
            await using var transaction = await connection.BeginTransactionAsync();
            await using var delete = new NpgsqlCommand("DELETE FROM vms WHERE name LIKE 'c-%'", connection, transaction);
            await delete.ExecuteNonQueryAsync();
            await transaction.RollbackAsync();
        }

        Assert.Equal(0, await Database.ScalarAsync(Drift));
        Assert.Equal(26, await Database.ScalarAsync("SELECT sum(vms) FROM vm_counts"));

        await Execute("TRUNCATE vms CASCADE");
        Assert.Equal(0, await Database.ScalarAsync("SELECT count(*) FROM vm_counts"));
    }

    private async Task Execute(string sql)
    {
        await using var connection = new NpgsqlConnection(Database.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }
}
