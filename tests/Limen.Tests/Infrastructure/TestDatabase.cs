using Npgsql;

namespace Limen.Tests.Infrastructure;

/// <summary>
/// A database of its own for one fixture, on the PostgreSQL that ./test.sh started, named with the
/// "limen_test_" prefix so ./test.sh can sweep what a killed run left behind. Dropped on dispose.
/// </summary>
public sealed class TestDatabase : IAsyncDisposable
{
    public const string Prefix = "limen_test_";

    private TestDatabase(string name, string connectionString)
    {
        Name = name;
        ConnectionString = connectionString;
    }

    public string Name { get; }
    public string ConnectionString { get; }

    public static async Task<TestDatabase> CreateAsync()
    {
        var name = Prefix + Guid.NewGuid().ToString("N")[..12];
        await using (var admin = new NpgsqlConnection(ServerConnectionString("postgres")))
        {
            await admin.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE {name}", admin);
            await create.ExecuteNonQueryAsync();
        }

        return new TestDatabase(name, ServerConnectionString(name));
    }

    /// <summary>The test server's connection string for <paramref name="database"/>; fails loudly without one.</summary>
    public static string ServerConnectionString(string database)
    {
        var url = Environment.GetEnvironmentVariable("LIMEN_TEST_DATABASE_URL");
        if (string.IsNullOrEmpty(url))
        {
            var stateFile = Path.Combine(RepoPaths.Root, ".limen", "database-url");
            url = File.Exists(stateFile)
                ? File.ReadAllText(stateFile).Trim()
                : throw new InvalidOperationException("No test database: run ./test.sh, or set LIMEN_TEST_DATABASE_URL.");
        }

        var builder = new NpgsqlConnectionStringBuilder(Data.DatabaseConnection.FromUrl(url)) { Database = database, Pooling = true };
        return builder.ConnectionString;
    }

    public async Task<long> ScalarAsync(string sql)
    {
        await using var connection = new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return Convert.ToInt64(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    public async ValueTask DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        await using var admin = new NpgsqlConnection(ServerConnectionString("postgres"));
        await admin.OpenAsync();
        await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS {Name} WITH (FORCE)", admin);
        await drop.ExecuteNonQueryAsync();
    }
}
