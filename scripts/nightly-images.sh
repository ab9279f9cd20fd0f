#!/usr/bin/env bash
# The nightly image job of an image host: build SET with the published REPO as the build cache, then publish
# the set to REPO (with retention, and signing when OST_SIGN_KEY names a GPG key).
#
#   scripts/nightly-images.sh images/debian12.yaml /srv/ost-images/repo
#
# Layers whose package repositories did not change are cached (or fetched from REPO on a fresh worker); a
# night without upstream changes builds nothing, publishes nothing and takes seconds. Any failure exits
# non-zero and publishes nothing: CI hosts keep installing the last complete set.
#
# Environment:
#   OST                 the ost command (default: bin/ost of this checkout)
#   OST_NIGHTLY_OUT     build directory (default: /var/lib/ost-images/build/<set file name>)
#   OST_NIGHTLY_KEEP    complete sets kept in REPO (default: 3)
#   OST_SIGN_KEY        GPG key id to sign RPMs and repomd.xml with (in $GNUPGHOME; default: unsigned)
#   OST_NIGHTLY_ARGS    more build-images options, e.g. "--jobs 3"
#   OST_NIGHTLY_DEPLOYED  suites to deploy on the new images and publish as ost-images-<distro>-<suite>-deployed
#                       (space-separated), from OST_NIGHTLY_ENV_FILE (an ost-env.yaml) or OST_NIGHTLY_OST_REPO
#                       (an ovirt-system-tests checkout). A suite whose deploy fails is left out: the set is still
#                       published, the repository keeps serving that suite's last deployed package (pinned to the
#                       images it was made on), and the job exits 4.
set -euo pipefail

usage() {
  echo "usage: $0 SET.yaml REPO_DIR" >&2
  exit 2
}
[ $# -eq 2 ] || usage
set_file=$1
repo=$2
[ -f "$set_file" ] || {
  echo "error: $set_file: no such image-set file" >&2
  exit 2
}
case "$repo" in
/*) ;;
*) repo="$PWD/$repo" ;;
esac

here=$(cd "$(dirname "$0")/.." && pwd)
ost=${OST:-$here/bin/ost}
name=$(basename "$set_file" .yaml)
out=${OST_NIGHTLY_OUT:-/var/lib/ost-images/build/$name}
keep=${OST_NIGHTLY_KEEP:-3}

args=(build-images "$set_file" --out "$out" --publish "$repo" --keep "$keep")
# the published repository is the cache: a fresh worker fetches unchanged layers instead of building them
if [ -f "$repo/repodata/repomd.xml" ]; then args+=(--cache-repo "$repo"); fi
if [ -n "${OST_SIGN_KEY:-}" ]; then args+=(--sign-key "$OST_SIGN_KEY"); fi
for suite in ${OST_NIGHTLY_DEPLOYED:-}; do args+=(--deployed "$suite"); done
if [ -n "${OST_NIGHTLY_ENV_FILE:-}" ]; then args+=(--env-file "$OST_NIGHTLY_ENV_FILE"); fi
if [ -n "${OST_NIGHTLY_OST_REPO:-}" ]; then args+=(--ost-repo "$OST_NIGHTLY_OST_REPO"); fi
# shellcheck disable=SC2206 # word splitting of the extra options is wanted
if [ -n "${OST_NIGHTLY_ARGS:-}" ]; then args+=($OST_NIGHTLY_ARGS); fi

started=$(date +%s)
echo "nightly $name: $ost ${args[*]}"
if "$ost" "${args[@]}"; then
  echo "nightly $name: done in $(($(date +%s) - started))s"
else
  rc=$?
  if [ "$rc" -eq 4 ]; then
    echo "nightly $name: published after $(($(date +%s) - started))s, but a suite's deploy FAILED (above): $repo serves its last deployed package" >&2
  else
    echo "nightly $name: FAILED (exit $rc) after $(($(date +%s) - started))s; $repo still serves the previous set" >&2
  fi
  exit "$rc"
fi
