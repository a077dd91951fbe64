-- 50 users, 1 host, 1 image, :vms VMs, :audit_rows audit rows: the benchmark's database
-- (psql -v vms=1000 -v audit_rows=100000 for the small one, 10x both for the large one).
-- Runs after `limen migrate`; values look like what the API writes.
INSERT INTO users (id, username, password_hash, role, disabled, created_at, updated_at)
SELECT gen_random_uuid(), 'user' || i, 'AQAAAAIAAYagAAAAE' || md5(i::text) || md5((i * 7)::text), CASE WHEN i = 1 THEN 'admin' ELSE 'user' END, false, now(), now()
FROM generate_series(1, 50) AS i;

INSERT INTO hosts (id, name, uri, console_address, created_at)
VALUES (gen_random_uuid(), 'local', 'qemu:///system', '127.0.0.1', now());

INSERT INTO images (id, name, kind, format, file_name, size_bytes, virtual_size_bytes, sha256, created_at)
VALUES (gen_random_uuid(), 'debian-12', 'disk', 'qcow2', 'debian-12.qcow2', 412876800, 2147483648, md5('img') || md5('img2'), now());

INSERT INTO vms (id, name, owner_id, host_id, image_id, boot_order, vcpus, memory_mb, disk_gb, state, mac_address, created_at, updated_at)
SELECT gen_random_uuid(), 'vm-' || i, u.id, (SELECT id FROM hosts), (SELECT id FROM images), 'hd', 1 + i % 4, 512 * (1 + i % 8), 10 + i % 40,
       CASE WHEN i % 3 = 0 THEN 'running' ELSE 'stopped' END,
       '52:54:00:' || lpad(to_hex((i >> 16) & 255), 2, '0') || ':' || lpad(to_hex((i >> 8) & 255), 2, '0') || ':' || lpad(to_hex(i & 255), 2, '0'),
       now() - i * interval '1 minute', now()
FROM generate_series(1, :vms) AS i
JOIN LATERAL (SELECT id FROM users ORDER BY username OFFSET (i % 50) LIMIT 1) AS u ON true;

INSERT INTO audit_logs (time, request_id, user_id, username, action, target_type, target_id, result, error_code, client_ip, user_agent, details)
SELECT now() - i * interval '1 second', md5(i::text), u.id, u.username,
       (ARRAY['auth.login', 'vm.create', 'vm.start', 'vm.stop', 'vm.delete', 'user.update'])[1 + i % 6], 'vm', gen_random_uuid()::text,
       CASE WHEN i % 10 = 0 THEN 'failure' ELSE 'success' END, CASE WHEN i % 10 = 0 THEN 'validation' END,
       '10.0.' || (i % 250) || '.' || (i % 200), 'Mozilla/5.0 (X11; Linux x86_64) limen-bench',
       jsonb_build_object('name', 'vm-' || (i % :vms), 'vcpus', 1 + i % 4, 'memory_mb', 512 * (1 + i % 8))
FROM generate_series(1, :audit_rows) AS i
JOIN LATERAL (SELECT id, username FROM users ORDER BY username OFFSET (i % 50) LIMIT 1) AS u ON true;

ANALYZE;
