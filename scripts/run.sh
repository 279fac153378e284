#!/usr/bin/env bash
# make run: start airmeshd in the foreground on its checkout defaults (data in ./var/airmesh,
# HTTPS on 127.0.0.1:8443). Ctrl-C stops it cleanly. The runner joins here with the runners issue.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-./var/airmesh}
exec bin/airmeshd --data "$DATA" --listen "${AIRMESH_LISTEN:-127.0.0.1:8443}" \
  --grpc-listen "${AIRMESH_GRPC_LISTEN:-127.0.0.1:9443}" --ui ui/static
