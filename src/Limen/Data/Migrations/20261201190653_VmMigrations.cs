using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Limen.Data.Migrations
{
    /// <inheritdoc />
    public partial class VmMigrations : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "vm_migrations",
                columns: table => new
                {
                    id = table.Column<Guid>(type: "uuid", nullable: false),
                    vm_id = table.Column<Guid>(type: "uuid", nullable: false),
                    source_host_id = table.Column<Guid>(type: "uuid", nullable: false),
                    target_host_id = table.Column<Guid>(type: "uuid", nullable: false),
                    mode = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    storage = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    result = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    error = table.Column<string>(type: "text", nullable: true),
                    started_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    finished_at = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    data_total = table.Column<long>(type: "bigint", nullable: true),
                    data_remaining = table.Column<long>(type: "bigint", nullable: true),
                    downtime_ms = table.Column<long>(type: "bigint", nullable: true),
                    target_cleanup_pending = table.Column<bool>(type: "boolean", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("pk_vm_migrations", x => x.id);
                    table.ForeignKey(
                        name: "fk_vm_migrations_hosts_source_host_id",
                        column: x => x.source_host_id,
                        principalTable: "hosts",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Restrict);
                    table.ForeignKey(
                        name: "fk_vm_migrations_hosts_target_host_id",
                        column: x => x.target_host_id,
                        principalTable: "hosts",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Restrict);
                    table.ForeignKey(
                        name: "fk_vm_migrations_vms_vm_id",
                        column: x => x.vm_id,
                        principalTable: "vms",
                        principalColumn: "id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "ix_vm_migrations_source_host_id",
                table: "vm_migrations",
                column: "source_host_id");

            migrationBuilder.CreateIndex(
                name: "ix_vm_migrations_target_host_id",
                table: "vm_migrations",
                column: "target_host_id",
                filter: "target_cleanup_pending");

            migrationBuilder.CreateIndex(
                name: "ix_vm_migrations_vm_id_started_at",
                table: "vm_migrations",
                columns: new[] { "vm_id", "started_at" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "vm_migrations");
        }
    }
}
