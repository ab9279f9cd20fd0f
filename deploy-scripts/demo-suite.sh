#!/bin/bash
# Runs on each demo-suite VM once it is SSH-ready: `ost up` sends it over SSH to bash (nothing is
# interpolated). OST suites use such scripts for per-VM setup that cannot be baked into the images.
set -euo pipefail
echo "deployed by ost up on $(date -u +%Y-%m-%dT%H:%M:%SZ) to $(hostname)" > /etc/ost-deployed
