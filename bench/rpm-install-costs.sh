#!/bin/bash
# Where an install of image RPMs spends its time: the same RPMs installed into a fresh root with rpm itself
# (no dnf), with and without its digest checks, rounds alternating; then the payload's decompression alone
# (rpm2cpio to /dev/null). Page cache warmed first (the RPMs read once), the root removed after each install.
# Usage (root): bench/rpm-install-costs.sh <rounds> <rpm> [<rpm> ...]
set -euo pipefail
rounds=$1
shift
work=$(mktemp -d /var/tmp/ost-rpm-costs-XXXXXX)
trap 'rm -rf "$work"' EXIT
cat "$@" > /dev/null
variants=('' '--nofiledigest' '--nodigest --nosignature' '--nodigest --nosignature --nofiledigest')
echo '| round | rpm -i flags | real | user | sys |'
echo '|---|---|---|---|---|'
for r in $(seq 1 "$rounds"); do
  for flags in "${variants[@]}"; do
    mkdir "$work/root"
    sync
    # shellcheck disable=SC2086 # the flags are words
    t=$({ /usr/bin/time -f '%e s | %U s | %S s' rpm --root "$work/root" --nodeps $flags -i "$@" 2>&1 >/dev/null; } |
      grep -v -e Alien -e assuming | tail -1)
    echo "| $r | ${flags:-(default)} | $t |"
    rm -rf "$work/root"
  done
done
for r in $(seq 1 "$rounds"); do
  t=$({ /usr/bin/time -f '%e s | %U s | %S s' bash -c 'for f; do rpm2cpio "$f" > /dev/null; done' _ "$@"; } 2>&1)
  echo "| $r | payload decompression only (rpm2cpio) | $t |"
done
