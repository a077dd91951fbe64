using Microsoft.AspNetCore.DataProtection.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore;

namespace Limen.Data;

public sealed class LimenDbContext(DbContextOptions<LimenDbContext> options) : DbContext(options), IDataProtectionKeyContext
{
    /// <summary>The keys that protect browser session cookies and anti-forgery tokens, shared by every replica.</summary>
    public DbSet<DataProtectionKey> DataProtectionKeys => Set<DataProtectionKey>();

    public DbSet<User> Users => Set<User>();
    public DbSet<RefreshToken> RefreshTokens => Set<RefreshToken>();
    public DbSet<AuditLog> AuditLogs => Set<AuditLog>();
    public DbSet<Alert> Alerts => Set<Alert>();
    public DbSet<VmHost> Hosts => Set<VmHost>();
    public DbSet<Image> Images => Set<Image>();
    public DbSet<Vm> Vms => Set<Vm>();
    public DbSet<VmCount> VmCounts => Set<VmCount>();
    public DbSet<UserQuota> UserQuotas => Set<UserQuota>();
    public DbSet<SystemQuota> SystemQuotas => Set<SystemQuota>();
    public DbSet<VmSnapshot> VmSnapshots => Set<VmSnapshot>();
    public DbSet<VmMigration> VmMigrations => Set<VmMigration>();
    public DbSet<BackupRun> BackupRuns => Set<BackupRun>();
    public DbSet<ConsoleTicket> ConsoleTickets => Set<ConsoleTicket>();
    public DbSet<ConsoleSession> ConsoleSessions => Set<ConsoleSession>();
    public DbSet<LimenEvent> Events => Set<LimenEvent>();
    public DbSet<SystemSettings> SystemSettings => Set<SystemSettings>();

    /// <summary>
    /// Saves staged events after every other change, in the same transaction. The insert of an event
    /// takes the events lock (migration Events) and holds it to the commit; written first (EF orders
    /// a save's inserts by table), an update behind it that waits for a row lock (a quota row, a VM
    /// row) would hold up every other writer's events, and deadlock with a writer that holds that
    /// row and waits for the lock. The events of a save that fails are dropped: an event never
    /// outlives the change it describes.
    /// </summary>
    public override async Task<int> SaveChangesAsync(bool acceptAllChangesOnSuccess, CancellationToken cancellationToken = default)
    {
        var staged = ChangeTracker.Entries<LimenEvent>().Where(e => e.State == EntityState.Added).Select(e => e.Entity).ToList();
        try
        {
            // Without accepting the first save's changes the second would write them again.
            if (staged.Count == 0 || !acceptAllChangesOnSuccess
                || !ChangeTracker.Entries().Any(e => e.Entity is not LimenEvent && e.State is EntityState.Added or EntityState.Modified or EntityState.Deleted))
            {
                return await base.SaveChangesAsync(acceptAllChangesOnSuccess, cancellationToken);
            }

            await using var transaction = Database.CurrentTransaction is null ? await Database.BeginTransactionAsync(cancellationToken) : null;
            foreach (var e in staged)
            {
                Entry(e).State = EntityState.Detached;
            }

            var saved = await base.SaveChangesAsync(acceptAllChangesOnSuccess, cancellationToken);
            Events.AddRange(staged);
            saved += await base.SaveChangesAsync(acceptAllChangesOnSuccess, cancellationToken);
            if (transaction is not null)
            {
                await transaction.CommitAsync(cancellationToken);
            }

            return saved;
        }
        catch
        {
            foreach (var e in staged)
            {
                Entry(e).State = EntityState.Detached;
            }

            throw;
        }
    }

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.Entity<User>(user =>
        {
            user.HasIndex(u => u.Username).IsUnique();
            user.Property(u => u.Username).HasMaxLength(32);
            user.Property(u => u.Role).HasMaxLength(16);
            // The admins' list of registrations waiting for approval, oldest first.
            user.HasIndex(u => u.CreatedAt).HasFilter("pending");
        });

        modelBuilder.Entity<SystemSettings>(settings =>
        {
            settings.ToTable("system_settings");
            settings.Property(s => s.Id).ValueGeneratedNever();
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

        modelBuilder.Entity<LimenEvent>(e =>
        {
            e.ToTable("events");
            // Assigned by the insert trigger (migration Events), after it took the writers' lock.
            e.Property(x => x.Id).ValueGeneratedOnAdd().HasDefaultValueSql("0");
            e.Property(x => x.Type).HasMaxLength(64);
            e.Property(x => x.ServerId).HasMaxLength(64);
            e.Property(x => x.Data).HasColumnType("jsonb");
            e.HasIndex(x => x.At);
        });

        modelBuilder.Entity<VmHost>(host =>
        {
            host.HasIndex(h => h.Name).IsUnique();
            host.HasIndex(h => h.Uri).IsUnique();
            host.Property(h => h.Source).HasMaxLength(16);
            host.Property(h => h.Mode).HasMaxLength(16);
        });

        modelBuilder.Entity<Image>(image =>
        {
            image.HasIndex(i => i.Name).IsUnique();
            image.HasIndex(i => i.FileName).IsUnique();
        });

        modelBuilder.Entity<BackupRun>(run =>
        {
            run.Property(r => r.Kind).HasMaxLength(16);
            run.Property(r => r.Status).HasMaxLength(16);
            run.Property(r => r.Hostname).HasMaxLength(255);
            // The metrics ask for the newest succeeded run of a kind.
            run.HasIndex(r => new { r.Kind, r.Status, r.FinishedAt });
        });

        modelBuilder.Entity<UserQuota>(quota =>
        {
            quota.ToTable("user_quotas");
            quota.HasKey(q => q.UserId);
            quota.HasOne<User>().WithOne().HasForeignKey<UserQuota>(q => q.UserId).OnDelete(DeleteBehavior.Cascade);
        });

        modelBuilder.Entity<SystemQuota>(quota =>
        {
            quota.ToTable("system_quota");
            quota.Property(q => q.Id).ValueGeneratedNever();
        });

        modelBuilder.Entity<VmSnapshot>(snapshot =>
        {
            snapshot.ToTable("vm_snapshots");
            snapshot.HasIndex(s => new { s.VmId, s.Name }).IsUnique();
            snapshot.Property(s => s.Name).HasMaxLength(64);
            // Rows from before snapshot operations recorded their intent are all finished snapshots.
            snapshot.Property(s => s.State).HasMaxLength(16).HasDefaultValue("ready");
            snapshot.Ignore(s => s.LibvirtName);
            snapshot.HasOne<Vm>().WithMany().HasForeignKey(s => s.VmId).OnDelete(DeleteBehavior.Cascade);
        });

        modelBuilder.Entity<Vm>(vm =>
        {
            vm.HasIndex(v => new { v.OwnerId, v.Name }).IsUnique();
            vm.HasIndex(v => v.MacAddress).IsUnique();
            // GET /api/vms pages in this order: all VMs for admins, one owner's for everybody else.
            vm.HasIndex(v => new { v.CreatedAt, v.Id });
            vm.HasIndex(v => new { v.OwnerId, v.CreatedAt, v.Id });
            vm.Property(v => v.Name).HasMaxLength(64);
            vm.Property(v => v.State).HasMaxLength(16);
            vm.Property(v => v.AntiAffinityGroup).HasMaxLength(64);
            vm.HasOne<User>().WithMany().HasForeignKey(v => v.OwnerId).OnDelete(DeleteBehavior.Restrict);
            vm.HasOne<VmHost>().WithMany().HasForeignKey(v => v.HostId).OnDelete(DeleteBehavior.Restrict);
            vm.HasOne<Image>().WithMany().HasForeignKey(v => v.ImageId).OnDelete(DeleteBehavior.Restrict);
            vm.HasOne<Image>().WithMany().HasForeignKey(v => v.CdromImageId).OnDelete(DeleteBehavior.Restrict);
        });

        modelBuilder.Entity<VmMigration>(migration =>
        {
            migration.ToTable("vm_migrations");
            migration.Property(m => m.Mode).HasMaxLength(16);
            migration.Property(m => m.Storage).HasMaxLength(16);
            migration.Property(m => m.Result).HasMaxLength(16);
            migration.HasIndex(m => new { m.VmId, m.StartedAt });
            // Recovery looks for the failed migrations whose target still holds a half-made domain.
            migration.HasIndex(m => m.TargetHostId).HasFilter("target_cleanup_pending");
            migration.HasOne<Vm>().WithMany().HasForeignKey(m => m.VmId).OnDelete(DeleteBehavior.Cascade);
            migration.HasOne<VmHost>().WithMany().HasForeignKey(m => m.SourceHostId).OnDelete(DeleteBehavior.Restrict);
            migration.HasOne<VmHost>().WithMany().HasForeignKey(m => m.TargetHostId).OnDelete(DeleteBehavior.Restrict);
        });

        modelBuilder.Entity<VmCount>(count =>
        {
            count.ToTable("vm_counts");
            count.HasKey(c => c.OwnerId);
            count.HasOne<User>().WithOne().HasForeignKey<VmCount>(c => c.OwnerId).OnDelete(DeleteBehavior.Cascade);
        });

        modelBuilder.Entity<ConsoleTicket>(ticket =>
        {
            ticket.HasIndex(t => t.TokenHash).IsUnique();
            ticket.HasIndex(t => t.ExpiresAt);
            // A ticket is worthless once its user or VM is gone.
            ticket.HasOne<User>().WithMany().HasForeignKey(t => t.UserId).OnDelete(DeleteBehavior.Cascade);
            ticket.HasOne<Vm>().WithMany().HasForeignKey(t => t.VmId).OnDelete(DeleteBehavior.Cascade);
        });

        modelBuilder.Entity<ConsoleSession>(session =>
        {
            session.Property(s => s.EndReason).HasMaxLength(32);
            session.Property(s => s.ClientIp).HasMaxLength(64);
            session.Property(s => s.UserAgent).HasMaxLength(512);
            session.Property(s => s.ServerId).HasMaxLength(128);
            // The per-user limit counts open sessions on every connect.
            session.HasIndex(s => s.UserId).HasFilter("ended_at IS NULL");
            session.HasIndex(s => s.VmId);
            session.HasIndex(s => s.StartedAt);
        });
    }
}
