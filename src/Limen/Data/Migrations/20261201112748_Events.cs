using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Limen.Data.Migrations
{
    /// <inheritdoc />
    public partial class Events : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "events",
                columns: table => new
                {
                    id = table.Column<long>(type: "bigint", nullable: false, defaultValueSql: "0"),
                    type = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    owner_id = table.Column<Guid>(type: "uuid", nullable: true),
                    vm_id = table.Column<Guid>(type: "uuid", nullable: true),
                    server_id = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    data = table.Column<string>(type: "jsonb", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_events", x => x.id);
                });

            migrationBuilder.CreateIndex(
                name: "ix_events_at",
                table: "events",
                column: "at");

            // Ids in commit order: each writer takes the events lock (advisory, transaction-scoped)
            // before it draws its id, and holds it until it commits. A reader that has seen id N has
            // therefore seen every event below N that will ever commit — resuming after N is gap-free.
            // The lock is held from the event's insert to the commit, so writers insert events last.
            migrationBuilder.Sql("""
                CREATE SEQUENCE events_id_seq AS bigint OWNED BY events.id;

                CREATE FUNCTION events_assign_id() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    PERFORM pg_advisory_xact_lock(19533, 1);
                    NEW.id := nextval('events_id_seq');
                    RETURN NEW;
                END $$;

                CREATE FUNCTION events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    PERFORM pg_notify('limen_events', NEW.id::text);
                    RETURN NULL;
                END $$;

                CREATE TRIGGER events_assign_id BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION events_assign_id();
                CREATE TRIGGER events_notify AFTER INSERT ON events FOR EACH ROW EXECUTE FUNCTION events_notify();
                """);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "events");
            migrationBuilder.Sql("DROP FUNCTION events_assign_id(); DROP FUNCTION events_notify();");
        }
    }
}
