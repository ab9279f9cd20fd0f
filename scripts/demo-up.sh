#!/usr/bin/env bash
# The launcher demo, after scripts/demo.sh: `ost up demo-suite` from the dnf-installed images, log in, `ost down`.
# It runs inside a private network namespace with its own libvirtd, so it creates no bridge, NAT rule or
# DHCP server on the host's network (on a CI host you simply run `ost up demo-suite` against the system
# libvirtd). Needs root; a libvirtd that already runs on the host must be stopped first.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
ROOT="${OST_DEMO_ROOT:-/var/tmp/ost-demo-root}"   # qemu (user libvirt-qemu) must reach it: not under /root
NS="ost-demo-$$"

if pgrep -r R,S,D -x libvirtd >/dev/null; then
  echo "error: a libvirtd is already running; this demo starts its own in a network namespace (stop it first)" >&2
  exit 1
fi
LIBVIRTD_PID=""
VIRTLOGD_PID=""
cleanup() {
  $SUDO ip netns exec "$NS" ./bin/ost down >/dev/null 2>&1 || true
  # only the daemons this script started, by their pids
  if [ -n "$LIBVIRTD_PID" ]; then $SUDO kill "$LIBVIRTD_PID" 2>/dev/null || true; fi
  if [ -n "$VIRTLOGD_PID" ]; then $SUDO kill "$VIRTLOGD_PID" 2>/dev/null || true; fi
  sleep 1
  $SUDO ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT
$SUDO ip netns add "$NS"
$SUDO ip -n "$NS" link set lo up
if ! pgrep -r R,S,D -x virtlogd >/dev/null; then
  $SUDO rm -f /run/virtlogd.pid   # a stale one would name another process
  $SUDO ip netns exec "$NS" virtlogd -d
  for _ in $(seq 20); do [ -s /run/virtlogd.pid ] && break; sleep 0.25; done
  VIRTLOGD_PID="$($SUDO cat /run/virtlogd.pid)"
fi
$SUDO ip netns exec "$NS" libvirtd -d
for _ in $(seq 60); do virsh -c qemu:///system version >/dev/null 2>&1 && break; sleep 0.5; done
LIBVIRTD_PID="$($SUDO cat /run/libvirtd.pid)"

in_ns() { $SUDO ip netns exec "$NS" "$@"; }
in_ns ./bin/ost up demo-suite --images-root "$ROOT"
in_ns ./bin/ost list
in_ns ./bin/ost ssh engine -- 'echo "engine says: $(hostname -I)"; getent hosts host-0'
in_ns ./bin/ost ssh host-0 -- 'ping -c 2 ost-demo-suite-engine | tail -1'
in_ns ./bin/ost down
in_ns ./bin/ost list
