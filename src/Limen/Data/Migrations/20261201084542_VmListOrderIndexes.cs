using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Limen.Data.Migrations
{
    /// <inheritdoc />
    public partial class VmListOrderIndexes : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateIndex(
                name: "ix_vms_created_at_id",
                table: "vms",
                columns: new[] { "created_at", "id" });

            migrationBuilder.CreateIndex(
                name: "ix_vms_owner_id_created_at_id",
                table: "vms",
                columns: new[] { "owner_id", "created_at", "id" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "ix_vms_created_at_id",
                table: "vms");

            migrationBuilder.DropIndex(
                name: "ix_vms_owner_id_created_at_id",
                table: "vms");
        }
    }
}
