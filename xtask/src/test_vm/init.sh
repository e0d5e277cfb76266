#!/bin/busybox sh
# /init of the test-vm guest (xtask/src/test_vm/init.sh, packed by `cargo xtask test-vm`).
# Mounts the basics, loads the modules in dependency order, runs each test separately with a
# timeout, reports one line per test on /dev/ttyS1 tagged with the run's nonce, then a done
# marker, and leaves QEMU through isa-debug-exit (0x10: all passed, 0x11: something failed).
/bin/busybox mkdir -p /proc /sys /dev /run /tmp
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TMPDIR=/tmp
# /run and /tmp stay on the initramfs's own RAM-backed rootfs: mounting a tmpfs over them
# would hide the packages' files when the checkout itself lives under /tmp or /run (the guest
# holds them at the host's absolute paths).
mkdir -p /run/netns /dev/pts /dev/shm
# What udev would create: `nft -f -` (vethlab's firewall) reads /dev/stdin.
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
chmod 0755 /run
chmod 1777 /tmp
mount -t tmpfs -o mode=1777 tmpfs /dev/shm

nonce=none inject=0 test_timeout=120
for w in $(cat /proc/cmdline); do
  case "$w" in
    vethlab.nonce=*) nonce=${w#*=} ;;
    vethlab.inject_failure=1) inject=1 ;;
    vethlab.test_timeout=*) test_timeout=${w#*=} ;;
  esac
done

R=/dev/ttyS1
report() { echo "$*" > $R; }
# /proc/uptime in centiseconds ("12.34" -> 1234).
now_cs() { read -r up _ < /proc/uptime; echo "${up%.*}${up#*.}"; }

report "VMBOOT $nonce $(now_cs)"

while read -r m; do
  if ! insmod "/lib/modules/$m.ko" 2>/tmp/insmod.err && ! grep -q 'File exists' /tmp/insmod.err; then
    echo "vethlab-init: insmod $m: $(cat /tmp/insmod.err)"
    report "VMMODFAIL $nonce $m"
  fi
done < /etc/vethlab/modules
ip link set lo up
report "VMREADY $nonce $(now_cs)"

export CI=1 VETHLAB_BIN=/bin/vethlab VETHLAB_IN_VM=1 RUST_BACKTRACE=1
. /etc/vethlab/env
cp /etc/vethlab/tests /tmp/tests
if [ "$inject" = 1 ]; then echo "/bin/vethlab-injected-failure / injected::always_fails" >> /tmp/tests; fi

k=0 failed=0
while read -r bin dir name; do
  k=$((k + 1))
  t0=$(now_cs)
  # Like `cargo test`: the test runs in its package directory.
  (cd "$dir" && exec timeout -s KILL "$test_timeout" "$bin" --exact "$name" --test-threads=1) </dev/null >/tmp/out 2>&1
  rc=$?
  t1=$(now_cs)
  if [ $rc -eq 0 ] && grep -q '^test result: ok. 1 passed' /tmp/out; then
    st=pass
  elif [ $rc -eq 0 ] && grep -q '^test result: ok. 0 passed; 0 failed; 1 ignored' /tmp/out; then
    st=skip
  else
    st=fail failed=$((failed + 1))
    [ $rc -eq 137 ] && echo "vethlab-init: $name killed after ${test_timeout}s" >> /tmp/out
    echo "===VMOUT $k $name==="
    cat /tmp/out
    echo "===VMEND $k==="
  fi
  report "VMRESULT $nonce $k $st $(((t1 - t0) * 10)) $bin $name"
done < /tmp/tests

report "VMDONE $nonce $k $failed"
sync
if [ "$failed" -eq 0 ]; then code='\020'; else code='\021'; fi
printf "$code" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
echo "vethlab-init: isa-debug-exit did not stop QEMU; powering off"
poweroff -f
