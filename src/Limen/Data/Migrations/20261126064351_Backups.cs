using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Limen.Data.Migrations
{
    /// <inheritdoc />
    public partial class Backups : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "backup_runs",
                columns: table => new
                {
                    id = table.Column<Guid>(type: "uuid", nullable: false),
                    kind = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    status = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    started_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    finished_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    archive_path = table.Column<string>(type: "text", nullable: true),
                    archive_size_bytes = table.Column<long>(type: "bigint", nullable: true),
                    report_path = table.Column<string>(type: "text", nullable: true),
                    error = table.Column<string>(type: "text", nullable: true),
                    hostname = table.Column<string>(type: "character varying(255)", maxLength: 255, nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_backup_runs", x => x.id);
                });

            migrationBuilder.CreateTable(
                name: "system_quota",
                columns: table => new
                {
                    id = table.Column<int>(type: "integer", nullable: false),
                    max_vms = table.Column<int>(type: "integer", nullable: true),
                    max_vcpus = table.Column<int>(type: "integer", nullable: true),
                    max_memory_mb = table.Column<int>(type: "integer", nullable: true),
                    max_disk_gb = table.Column<int>(type: "integer", nullable: true),
                    max_snapshots = table.Column<int>(type: "integer", nullable: true),
                    updated_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_system_quota", x => x.id);
                });

            migrationBuilder.CreateTable(
                name: "user_quotas",
                columns: table => new
                {
                    user_id = table.Column<Guid>(type: "uuid", nullable: false),
                    max_vms = table.Column<int>(type: "integer", nullable: true),
                    max_vcpus = table.Column<int>(type: "integer", nullable: true),
                    max_memory_mb = table.Column<int>(type: "integer", nullable: true),
                    max_disk_gb = table.Column<int>(type: "integer", nullable: true),
                    max_snapshots = table.Column<int>(type: "integer", nullable: true),
                    updated_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_user_quotas", x => x.user_id);
                    table.ForeignKey(
                        name: "fk_user_quotas_users_user_id",
                        column: x => x.user_id,
                        principalTable: "users",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "vm_snapshots",
                columns: table => new
                {
                    id = table.Column<Guid>(type: "uuid", nullable: false),
                    vm_id = table.Column<Guid>(type: "uuid", nullable: false),
                    name = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    description = table.Column<string>(type: "text", nullable: true),
                    include_memory = table.Column<bool>(type: "boolean", nullable: false),
                    vm_state = table.Column<string>(type: "text", nullable: false),
                    created_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_vm_snapshots", x => x.id);
                    table.ForeignKey(
                        name: "fk_vm_snapshots_vms_vm_id",
                        column: x => x.vm_id,
                        principalTable: "vms",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "ix_backup_runs_kind_status_finished_at",
                table: "backup_runs",
                columns: new[] { "kind", "status", "finished_at" });

            migrationBuilder.CreateIndex(
                name: "ix_vm_snapshots_vm_id_name",
                table: "vm_snapshots",
                columns: new[] { "vm_id", "name" },
                unique: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "backup_runs");

            migrationBuilder.DropTable(
                name: "system_quota");

            migrationBuilder.DropTable(
                name: "user_quotas");

            migrationBuilder.DropTable(
                name: "vm_snapshots");
        }
    }
}
