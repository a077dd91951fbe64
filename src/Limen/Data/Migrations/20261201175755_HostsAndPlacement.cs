using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Limen.Data.Migrations
{
    /// <inheritdoc />
    public partial class HostsAndPlacement : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "anti_affinity_group",
                table: "vms",
                type: "character varying(64)",
                maxLength: 64,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "placement_reason",
                table: "vms",
                type: "text",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "disk_dir",
                table: "hosts",
                type: "text",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "migration_address",
                table: "hosts",
                type: "text",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "mode",
                table: "hosts",
                type: "character varying(16)",
                maxLength: 16,
                nullable: false,
                // Every host there was before hosts could be put in maintenance is active.
                defaultValue: "active");

            migrationBuilder.AddColumn<string>(
                name: "source",
                table: "hosts",
                type: "character varying(16)",
                maxLength: 16,
                nullable: false,
                // Every host there was before the hosts API came from the configuration.
                defaultValue: "config");

            migrationBuilder.AddColumn<string>(
                name: "virtualization_type",
                table: "hosts",
                type: "text",
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "anti_affinity_group",
                table: "vms");

            migrationBuilder.DropColumn(
                name: "placement_reason",
                table: "vms");

            migrationBuilder.DropColumn(
                name: "disk_dir",
                table: "hosts");

            migrationBuilder.DropColumn(
                name: "migration_address",
                table: "hosts");

            migrationBuilder.DropColumn(
                name: "mode",
                table: "hosts");

            migrationBuilder.DropColumn(
                name: "source",
                table: "hosts");

            migrationBuilder.DropColumn(
                name: "virtualization_type",
                table: "hosts");
        }
    }
}
