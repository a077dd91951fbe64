-- The load benchmark's database: 100 users with 100 VMs each (10,000 VMs), one host (the bench
-- server's libvirt test-driver URI, passed as :'uri'), one image. Runs after `limen migrate`; values
-- look like what the API writes. The admin comes from the server's first start.
INSERT INTO users (id, username, password_hash, role, disabled, created_at, updated_at)
SELECT gen_random_uuid(), 'bench' || lpad(i::text, 3, '0'), 'AQAAAAIAAYagAAAAE' || md5(i::text) || md5((i * 7)::text), 'user', false,
       now() - interval '30 days', now() - interval '30 days'
FROM generate_series(1, 100) AS i;

INSERT INTO hosts (id, name, uri, console_address, created_at)
VALUES (gen_random_uuid(), 'local', :'uri', '127.0.0.1', now());

INSERT INTO images (id, name, kind, format, file_name, size_bytes, virtual_size_bytes, sha256, created_at)
VALUES (gen_random_uuid(), 'blank', 'disk', 'qcow2', 'blank.qcow2', 196616, 67108864, md5('img') || md5('img2'), now());

-- VM i belongs to user bench(1 + i % 100); created a second apart, newest last, so pages are stable.
INSERT INTO vms (id, name, owner_id, host_id, image_id, boot_order, vcpus, memory_mb, disk_gb, state, mac_address, created_at, updated_at)
SELECT gen_random_uuid(), 'vm-' || i, u.id, (SELECT id FROM hosts), (SELECT id FROM images), 'hd', 1 + i % 4, 512 * (1 + i % 8), 10 + i % 40,
       CASE WHEN i % 3 = 0 THEN 'running' ELSE 'stopped' END,
       '52:54:00:' || lpad(to_hex((i >> 16) & 255), 2, '0') || ':' || lpad(to_hex((i >> 8) & 255), 2, '0') || ':' || lpad(to_hex(i & 255), 2, '0'),
       now() - interval '20 days' + i * interval '1 second', now() - interval '1 day'
FROM generate_series(1, 10000) AS i
JOIN users AS u ON u.username = 'bench' || lpad((1 + i % 100)::text, 3, '0');

-- The soak's writer (bench100) creates and deletes VMs beside its 100: room above every limit.
INSERT INTO system_quota (id, max_vms, max_vcpus, max_memory_mb, max_disk_gb, max_snapshots, updated_at)
VALUES (1, 1000000, 1000000, 1000000000, 1000000, 1000000, now());
INSERT INTO user_quotas (user_id, max_vms, max_vcpus, max_memory_mb, max_disk_gb, max_snapshots, updated_at)
SELECT id, 10000, 100000, 100000000, 1000000, 10000, now() FROM users WHERE username = 'bench100';

-- As autovacuum leaves a table that has settled: statistics and the visibility map up to date.
VACUUM (ANALYZE) users, hosts, images, vms, system_quota, user_quotas;
