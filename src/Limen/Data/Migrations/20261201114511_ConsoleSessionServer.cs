using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace Limen.Data.Migrations
{
    /// <inheritdoc />
    public partial class ConsoleSessionServer : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "server_id",
                table: "console_sessions",
                type: "character varying(128)",
                maxLength: 128,
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "server_id",
                table: "console_sessions");
        }
    }
}
