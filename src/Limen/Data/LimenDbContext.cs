using Microsoft.EntityFrameworkCore;

namespace Limen.Data;

public sealed class LimenDbContext(DbContextOptions<LimenDbContext> options) : DbContext(options)
{
    public DbSet<User> Users => Set<User>();
    public DbSet<RefreshToken> RefreshTokens => Set<RefreshToken>();
    public DbSet<AuditLog> AuditLogs => Set<AuditLog>();
    public DbSet<Alert> Alerts => Set<Alert>();
    public DbSet<VmHost> Hosts => Set<VmHost>();
    public DbSet<Image> Images => Set<Image>();
    public DbSet<Vm> Vms => Set<Vm>();

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

        modelBuilder.Entity<Alert>(alert =>
        {
            alert.Property(a => a.Fingerprint).HasMaxLength(64);
            alert.Property(a => a.Status).HasMaxLength(16);
            alert.Property(a => a.Alertname).HasMaxLength(200);
            alert.Property(a => a.Receiver).HasMaxLength(200);
            alert.Property(a => a.Labels).HasColumnType("jsonb");
            alert.Property(a => a.Annotations).HasColumnType("jsonb");
            // The webhook's upsert (ON CONFLICT) relies on this unique index.
            alert.HasIndex(a => new { a.Fingerprint, a.StartsAt }).IsUnique();
            alert.HasIndex(a => new { a.Status, a.LastReceivedAt });
        });

        modelBuilder.Entity<VmHost>(host =>
        {
            host.HasIndex(h => h.Name).IsUnique();
            host.HasIndex(h => h.Uri).IsUnique();
        });

        modelBuilder.Entity<Image>(image =>
        {
            image.HasIndex(i => i.Name).IsUnique();
            image.HasIndex(i => i.FileName).IsUnique();
        });

        modelBuilder.Entity<Vm>(vm =>
        {
            vm.HasIndex(v => new { v.OwnerId, v.Name }).IsUnique();
            vm.HasIndex(v => v.MacAddress).IsUnique();
            vm.Property(v => v.Name).HasMaxLength(64);
            vm.Property(v => v.State).HasMaxLength(16);
            vm.HasOne<User>().WithMany().HasForeignKey(v => v.OwnerId).OnDelete(DeleteBehavior.Restrict);
            vm.HasOne<VmHost>().WithMany().HasForeignKey(v => v.HostId).OnDelete(DeleteBehavior.Restrict);
            vm.HasOne<Image>().WithMany().HasForeignKey(v => v.ImageId).OnDelete(DeleteBehavior.Restrict);
            vm.HasOne<Image>().WithMany().HasForeignKey(v => v.CdromImageId).OnDelete(DeleteBehavior.Restrict);
        });
    }
}
