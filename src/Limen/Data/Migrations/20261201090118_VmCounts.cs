using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Limen.Data.Migrations
{
    /// <inheritdoc />
    public partial class VmCounts : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "vm_counts",
                columns: table => new
                {
                    owner_id = table.Column<Guid>(type: "uuid", nullable: false),
                    vms = table.Column<int>(type: "integer", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_vm_counts", x => x.owner_id);
                    table.ForeignKey(
                        name: "fk_vm_counts_users_owner_id",
                        column: x => x.owner_id,
                        principalTable: "users",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            // The counts follow vms in the same transaction as each change, so they are always exact.
            // A change of owner moves one VM between two rows; TRUNCATE fires no row trigger, hence its own.
            migrationBuilder.Sql("""
                CREATE FUNCTION vm_counts_follow() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF TG_OP = 'TRUNCATE' THEN
                        DELETE FROM vm_counts;
                        RETURN NULL;
                    END IF;
                    IF TG_OP IN ('DELETE', 'UPDATE') THEN
                        UPDATE vm_counts SET vms = vms - 1 WHERE owner_id = OLD.owner_id;
                    END IF;
                    IF TG_OP IN ('INSERT', 'UPDATE') THEN
                        INSERT INTO vm_counts (owner_id, vms) VALUES (NEW.owner_id, 1)
                        ON CONFLICT (owner_id) DO UPDATE SET vms = vm_counts.vms + 1;
                    END IF;
                    RETURN NULL;
                END
                $$;

                CREATE TRIGGER vms_counts AFTER INSERT OR DELETE OR UPDATE OF owner_id ON vms
                    FOR EACH ROW EXECUTE FUNCTION vm_counts_follow();
                CREATE TRIGGER vms_counts_truncate AFTER TRUNCATE ON vms
                    FOR EACH STATEMENT EXECUTE FUNCTION vm_counts_follow();

                INSERT INTO vm_counts (owner_id, vms) SELECT owner_id, count(*) FROM vms GROUP BY owner_id;
                """);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql("""
                DROP TRIGGER vms_counts_truncate ON vms;
                DROP TRIGGER vms_counts ON vms;
                DROP FUNCTION vm_counts_follow();
                """);

            migrationBuilder.DropTable(
                name: "vm_counts");
        }
    }
}
