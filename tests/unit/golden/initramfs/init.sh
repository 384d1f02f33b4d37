#!/bin/busybox sh
# ktstr guest init (ktstr), rendered from initramfs/init.sh.j2. Only what PID 1
# must do before the agent: mount, find the port, run ktstr-agent; it receives the run
# plan from the host and does the rest (ktstr/guest/native/agent.c).
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export HOME=/root
[ -e /bin/mount ] || /bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /tmp /run /root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /dev/shm
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t bpf bpf /sys/fs/bpf 2>/dev/null

port=
for d in /sys/class/virtio-ports/*; do
  [ -f "$d/name" ] && read -r name < "$d/name" && [ "$name" = 'ktstr.results' ] && \
    port=/dev/${d##*/}
done
if [ -z "$port" ]; then
  echo "ktstr: virtio-serial port ktstr.results not found" > /dev/console
  poweroff -f
fi
/usr/bin/ktstr-agent agent "$port"
if [ $? = 100 ]; then
  echo "ktstr: interactive shell; 'exit' or Ctrl-D powers the VM off" > /dev/console
  setsid cttyhack sh -l
fi
# nothing to sync: the root file system is the initramfs
exec poweroff -f
