#!/bin/sh
# build.sh - builds the Limen tiny guest into out/:
#   vmlinuz, initrd.gz     Debian cloud kernel + busybox-static initramfs (/init from ./init)
#   tiny-guest.iso         El Torito (isolinux) ISO, isohybrid: the same bytes also boot as a hard disk
#   tiny-guest.qcow2       that hybrid image as a 1 GiB qcow2 - the base image for VM disk overlays
# Idempotent: does nothing when the outputs are newer than their inputs. Run as root (installs apt
# packages when missing). Env: OUT (default ./out), CACHE (default ./cache, holds the kernel .deb).
set -eu
cd "$(dirname "$0")"
HERE=$PWD
OUT=${OUT:-$HERE/out}
CACHE=${CACHE:-$HERE/cache}
DISK_SIZE=1G

# 0. Tools. Only install what dpkg says is missing (the common case is: nothing to do).
missing=""
for p in busybox-static isolinux syslinux-common xorriso qemu-utils; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "installing:$missing"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing ||
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing; }
fi

mkdir -p "$OUT" "$CACHE"
# QEMU runs as libvirt-qemu: it must be able to traverse to and read the images.
chmod o+rx "$OUT"

# 1. Debian cloud kernel .deb, downloaded once (never dpkg -i'd: no initramfs-tools/grub hooks).
KDEB=$(ls "$CACHE"/linux-image-*-cloud-amd64_*.deb 2>/dev/null | head -n1 || true)
if [ -z "$KDEB" ]; then
  kpkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
  [ -n "$kpkg" ] || { apt-get update -q; kpkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{print $2; exit}'); }
  # as root, apt would otherwise drop to the _apt user, which cannot write into $CACHE
  (cd "$CACHE" && apt-get download -q -o APT::Sandbox::User=root "$kpkg")
  KDEB=$(ls "$CACHE"/linux-image-*-cloud-amd64_*.deb | head -n1)
fi

newer_than_inputs() {   # $1 is newer than every input of the build
  [ -e "$1" ] || return 1
  for f in "$KDEB" init isolinux.cfg build.sh /bin/busybox; do
    [ "$1" -nt "$f" ] || return 1
  done
}

if newer_than_inputs "$OUT/tiny-guest.iso" && [ "$OUT/tiny-guest.qcow2" -nt "$OUT/tiny-guest.iso" ]; then
  echo "tiny guest is up to date in $OUT"
  exit 0
fi

T=$(mktemp -d); trap 'rm -rf "$T"' EXIT

# 2. vmlinuz + 8 small modules (virtio disk, ACPI power button) straight out of the .deb
dpkg-deb --fsys-tarfile "$KDEB" | tar -x -C "$T" --wildcards './boot/vmlinuz-*' \
  '*/virtio.ko' '*/virtio_ring.ko' '*/virtio_pci*.ko' '*/virtio_blk.ko' '*/acpi/button.ko' '*/input/evdev.ko'
cp "$T"/boot/vmlinuz-* "$T/vmlinuz"

# 3. initramfs: static busybox + /init (+ modules) as a newc cpio, gzip'd (busybox's cpio: no cpio package)
R=$T/root
mkdir -p "$R/bin" "$R/dev" "$R/proc" "$R/sys" "$R/tmp" "$R/lib/modules"
cp /bin/busybox "$R/bin/busybox"
ln -s busybox "$R/bin/sh"
install -m 0755 init "$R/init"
[ -d "$T/lib/modules" ] && find "$T/lib/modules" -name '*.ko' -exec cp {} "$R/lib/modules/" \;
(cd "$R" && find . | busybox cpio -o -H newc -R 0:0 2>/dev/null) | gzip -9n > "$T/initrd.gz"

# 4. El Torito ISO (isolinux), isohybrid so that the same bytes boot as a hard disk
I=$T/iso/isolinux
mkdir -p "$I"
cp /usr/lib/ISOLINUX/isolinux.bin /usr/lib/syslinux/modules/bios/ldlinux.c32 isolinux.cfg "$T/vmlinuz" "$T/initrd.gz" "$I/"
xorriso -as mkisofs -quiet -o "$T/tiny-guest.iso" -V LIMEN_TG -R -J \
  -isohybrid-mbr /usr/lib/ISOLINUX/isohdpfx.bin \
  -b isolinux/isolinux.bin -c isolinux/boot.cat -no-emul-boot -boot-load-size 4 -boot-info-table \
  "$T/iso" 2>/dev/null

# 5. Bootable disk image: the hybrid ISO as qcow2, grown so that overlays get a usable size
#    (the guest keeps its boot counter at 32 MiB, past the 16 MiB image).
qemu-img convert -q -f raw -O qcow2 "$T/tiny-guest.iso" "$T/tiny-guest.qcow2"
qemu-img resize -q -f qcow2 "$T/tiny-guest.qcow2" "$DISK_SIZE"

# Publish: readable by libvirt-qemu; the .qcow2 last so that it is the newest output.
for f in vmlinuz initrd.gz tiny-guest.iso tiny-guest.qcow2; do
  chmod 0644 "$T/$f"
  mv -f "$T/$f" "$OUT/$f"
done
ls -l "$OUT"
