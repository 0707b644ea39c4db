#!/bin/busybox sh
# Stage 1 of the vm tier's guest (PID 1 in the initramfs, busybox ash).
#
# Loads the boot modules, mounts the host's root (9p, read-only) under an
# overlay whose upper layer is on the scratch disk, moves /dev /proc /sys
# and the results share into it, and switch_roots into the host's venv
# python running tests.vmhost.guest (stage 2). Any failure powers off: the
# launcher then finds no results and fails the tier.

/bin/busybox --install -s /bin
export PATH=/bin

fail() {
    echo "ctpanel-vm: stage 1 failed: $*"
    sync
    poweroff -f
}

mount -t proc proc /proc || fail "mount /proc"
mount -t sysfs sysfs /sys || fail "mount /sys"
mount -t devtmpfs devtmpfs /dev || fail "mount /dev"
echo "ctpanel-vm: stage 1 up (initramfs, kernel $(uname -r))"

for mod in $(cat /etc/boot-modules); do
    insmod "$mod" || fail "insmod $mod"
done

REPO= PYTHON= MODULES=
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        ctpanel.repo=*) REPO="${arg#ctpanel.repo=}" ;;
        ctpanel.python=*) PYTHON="${arg#ctpanel.python=}" ;;
        ctpanel.modules=*) MODULES="${arg#ctpanel.modules=}" ;;
    esac
done
[ -n "$REPO" ] && [ -n "$PYTHON" ] && [ -n "$MODULES" ] || fail "ctpanel.* missing on the command line"

# Disks are found by the serial the launcher gave them, not by probe order.
SCRATCH=
for dev in /sys/block/vd*; do
    [ "$(cat "$dev/serial" 2>/dev/null)" = ctpanel-scratch ] && SCRATCH="/dev/${dev##*/}"
done
[ -n "$SCRATCH" ] || fail "no scratch disk (serial ctpanel-scratch)"

mount -t 9p -o ro,trans=virtio,version=9p2000.L,cache=loose,msize=262144 hostroot /lower \
    || fail "mount the host root (9p)"
# noinit_itable: no background inode-table zeroing under emulation.
mount -t ext4 -o noinit_itable "$SCRATCH" /scratch || fail "mount $SCRATCH"
mkdir -p /scratch/root-upper /scratch/root-work
mount -t overlay -o lowerdir=/lower,upperdir=/scratch/root-upper,workdir=/scratch/root-work \
    overlay /newroot || fail "mount the overlay root"

mkdir -p /newroot/mnt/vm-scratch /newroot/mnt/vm-results
mount --move /scratch /newroot/mnt/vm-scratch || fail "move the scratch disk"
mount -t 9p -o trans=virtio,version=9p2000.L,cache=none,msize=262144 results \
    /newroot/mnt/vm-results || fail "mount the results share"

# The guest kernel's full module tree (the host's cache, seen through 9p),
# and busybox's modprobe for it: the host may have no kmod, and kmod would
# want the binary indexes that only its own depmod writes.
KREL="$(uname -r)"
mkdir -p "/newroot/lib/modules/$KREL" /newroot/usr/local/lib/ctpanel-vm/bin
mount --bind "/newroot$MODULES" "/newroot/lib/modules/$KREL" || fail "bind the modules"
cp /bin/busybox /newroot/usr/local/lib/ctpanel-vm/busybox
for applet in modprobe insmod rmmod lsmod modinfo depmod; do
    ln -sf ../busybox "/newroot/usr/local/lib/ctpanel-vm/bin/$applet"
done
echo /usr/local/lib/ctpanel-vm/bin/modprobe > /proc/sys/kernel/modprobe

for fs in dev proc sys; do
    mount --move "/$fs" "/newroot/$fs" || fail "move /$fs"
done

export PYTHONPATH="$REPO" PYTHONDONTWRITEBYTECODE=1 CTPANEL_VM_REPO="$REPO"
echo "ctpanel-vm: stage 1 done, starting $PYTHON -m tests.vmhost.guest"
exec switch_root /newroot "$PYTHON" -m tests.vmhost.guest
