#!/usr/bin/env bash
# make run: start airmeshd on its checkout defaults (data in ./var/airmesh, HTTPS on
# 127.0.0.1:8443, runners on 127.0.0.1:9443) and one local runner (./var/runner).
# On the first start the local runner is enrolled with a one-time token created through the
# API as the bootstrap admin. Ctrl-C stops both cleanly.
set -uo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-./var/airmesh}
RUNNER_DATA=./var/runner
LISTEN=${AIRMESH_LISTEN:-127.0.0.1:8443}
GRPC=${AIRMESH_GRPC_LISTEN:-127.0.0.1:9443}
mkdir -p ./var
banner=./var/airmeshd.banner
: > "$banner"

# The built console (make build runs npm in ui/); the placeholder page when it isn't built.
UI=ui/static
[ -f ui/dist/index.html ] && UI=ui/dist
bin/airmeshd --data "$DATA" --listen "$LISTEN" --grpc-listen "$GRPC" --ui "$UI" \
  > >(tee "$banner") &
daemon=$!
runner=""
stop() {
  [ -n "$runner" ] && kill -TERM "$runner" 2>/dev/null
  kill -TERM "$daemon" 2>/dev/null
}
trap stop INT TERM

for _ in $(seq 1 100); do
  grep -q '^  runners dial:' "$banner" && break
  kill -0 "$daemon" 2>/dev/null || { wait "$daemon"; exit $?; }
  sleep 0.1
done
sleep 0.2

export AIRMESH_URL="https://$LISTEN" AIRMESH_CA="$DATA/pki/ca.pem"
if [ ! -f "$RUNNER_DATA/identity.pem" ]; then
  password=$(sed -n 's/^admin password: //p' "$banner")
  if [ -n "$password" ]; then
    export XDG_CONFIG_HOME=./var/ctl   # keep the script's session away from the user's
    if printf '%s\n' "$password" | bin/airmeshctl login --user admin >/dev/null &&
       cmd=$(bin/airmeshctl token create --ttl 10m --label local=true | sed -n 's/^  airmesh-runner enroll //p') &&
       [ -n "$cmd" ]; then
      # shellcheck disable=SC2086
      if bin/airmesh-runner enroll $cmd --data "$RUNNER_DATA" >/dev/null; then
        echo "  local runner:   enrolled ($RUNNER_DATA), starting"
      else
        echo "make run: local runner enrollment failed" >&2
      fi
    fi
    bin/airmeshctl logout >/dev/null 2>&1
    unset XDG_CONFIG_HOME
  else
    echo "make run: no local runner in $RUNNER_DATA; enroll one with 'airmeshctl token create'" >&2
  fi
fi
if [ -f "$RUNNER_DATA/identity.pem" ]; then
  bin/airmesh-runner run --data "$RUNNER_DATA" --label local=true &
  runner=$!
fi
wait "$daemon"
rc=$?
while kill -0 "$daemon" 2>/dev/null; do wait "$daemon"; rc=$?; done   # interrupted by Ctrl-C
[ -n "$runner" ] && { kill -TERM "$runner" 2>/dev/null; wait "$runner" 2>/dev/null; }
exit $rc
