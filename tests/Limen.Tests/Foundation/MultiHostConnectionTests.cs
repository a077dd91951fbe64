using Limen.Data;
using Limen.Features.Backup;
using Limen.Web;
using Microsoft.Extensions.Configuration;
using Npgsql;

namespace Limen.Tests.Foundation;

/// <summary>
/// A connection string naming a primary and its standbys (Npgsql's multi-host form), as each part of
/// Limen reads it; the switch itself under running servers is DatabaseFailoverTests.
/// </summary>
public sealed class MultiHostConnectionTests
{
    private const string TwoHosts = "Host=db1:5001,db2:5002;Username=limen;Password=secret;Database=limen";

    [Fact]
    public void Several_hosts_without_target_session_attributes_mean_the_primary_and_one_host_stays_as_written()
    {
        Assert.Equal("primary", new NpgsqlConnectionStringBuilder(Resolve(TwoHosts)).TargetSessionAttributes);
        Assert.Equal("prefer-primary", new NpgsqlConnectionStringBuilder(Resolve(TwoHosts + ";Target Session Attributes=prefer-primary")).TargetSessionAttributes);
        // Npgsql refuses Target Session Attributes on a single host: nothing is added there.
        Assert.Equal("Host=db1;Database=limen", Resolve("Host=db1;Database=limen"));
    }

    [Fact]
    public void Log_lines_name_every_host_and_no_password()
    {
        Assert.Equal("db1:5001,db2:5002/limen", DatabaseConnection.Describe(TwoHosts));
        Assert.Equal("db1:5432/limen", DatabaseConnection.Describe("Host=db1;Database=limen;Password=secret"));
    }

    [Fact]
    public void Backup_tools_get_libpqs_host_and_port_lists_and_only_a_primary_will_do()
    {
        var env = PgTools.Environment(TwoHosts + ";Port=5432", "limen-backup");
        Assert.Equal("db1,db2", env["PGHOST"]);
        Assert.Equal("5001,5002", env["PGPORT"]);
        Assert.Equal("primary", env["PGTARGETSESSIONATTRS"]);

        var mixed = PgTools.Environment("Host=db1,[::1]:5002,db3;Port=6000", "limen-backup");
        Assert.Equal("db1,::1,db3", mixed["PGHOST"]);
        Assert.Equal("6000,5002,6000", mixed["PGPORT"]);

        var single = PgTools.Environment("Host=db1;Port=5001", "limen-backup");
        Assert.Equal(("db1", "5001"), (single["PGHOST"], single["PGPORT"]));
        Assert.False(single.ContainsKey("PGTARGETSESSIONATTRS"));
    }

    [Fact]
    public void No_primary_among_the_hosts_and_a_standby_refusing_a_write_are_the_database_unavailable_not_an_error()
    {
        Assert.True(ProblemExceptionHandler.IsDatabaseUnavailable(new NpgsqlException("No suitable host was found.")));
        Assert.True(ProblemExceptionHandler.IsDatabaseUnavailable(new InvalidOperationException("wrapped", new NpgsqlException("No suitable host was found."))));
        Assert.True(ProblemExceptionHandler.IsDatabaseUnavailable(
            new PostgresException("cannot execute INSERT in a read-only transaction", "ERROR", "ERROR", "25006")));
        Assert.False(ProblemExceptionHandler.IsDatabaseUnavailable(new NpgsqlException("Received unexpected backend message")));
        Assert.False(ProblemExceptionHandler.IsDatabaseUnavailable(new PostgresException("duplicate key", "ERROR", "ERROR", "23505")));
    }

    private static string Resolve(string connectionString) =>
        DatabaseConnection.Resolve(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ConnectionStrings:Limen"] = connectionString,
        }).Build());
}
