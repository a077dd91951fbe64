using Microsoft.EntityFrameworkCore;

namespace Limen.Data;

public sealed class LimenDbContext(DbContextOptions<LimenDbContext> options) : DbContext(options)
{
    public DbSet<User> Users => Set<User>();
    public DbSet<RefreshToken> RefreshTokens => Set<RefreshToken>();
    public DbSet<AuditLog> AuditLogs => Set<AuditLog>();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.Entity<User>(user =>
        {
            user.HasIndex(u => u.Username).IsUnique();
            user.Property(u => u.Username).HasMaxLength(32);
            user.Property(u => u.Role).HasMaxLength(16);
        });

        modelBuilder.Entity<RefreshToken>(token =>
        {
            token.HasIndex(t => t.TokenHash).IsUnique();
            token.HasIndex(t => t.FamilyId);
            token.HasOne<User>().WithMany().HasForeignKey(t => t.UserId).OnDelete(DeleteBehavior.Cascade);
        });

        modelBuilder.Entity<AuditLog>(audit =>
        {
            audit.Property(a => a.Details).HasColumnType("jsonb");
            audit.HasIndex(a => a.Time);
            audit.HasIndex(a => new { a.UserId, a.Time });
            audit.HasIndex(a => a.Action);
        });
    }
}
