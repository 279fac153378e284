#!/bin/sh
# tests/unit/layering_test.sh — the layering rule of ARCHITECTURE.md §3, as a grep: no file
# under appliance/http/ or appliance/rpc/ calls am_store_*, am_txn_* or am_audit_event (state
# changes go through appliance/ops, which opens the transaction and writes the audit record).
# Positive control first: the same pattern must find such calls in appliance/ops, so a broken
# pattern cannot pass by matching nothing.
# Arguments: the source files (http, rpc, then "--", then ops).
set -u
pattern='\b(am_store_[a-z_]+|am_txn_[a-z_]+|am_audit_event)[[:space:]]*\('
transport=""
domain=""
side=t
for f in "$@"; do
    if [ "$f" = "--" ]; then side=d; continue; fi
    if [ $side = t ]; then transport="$transport $f"; else domain="$domain $f"; fi
done
[ -n "$transport" ] || { echo "FAIL: no transport sources given"; exit 1; }
# shellcheck disable=SC2086
if ! grep -Eq "$pattern" $domain; then
    echo "FAIL (positive control): the pattern finds no store/audit call in appliance/ops"
    exit 1
fi
n=0
for f in $transport; do n=$((n + 1)); done
# shellcheck disable=SC2086
hits=$(grep -EnH "$pattern" $transport)
if [ -n "$hits" ]; then
    echo "FAIL: transports must call appliance/ops, not the store or the audit log directly:"
    echo "$hits"
    exit 1
fi
echo "OK: $n transport files, no am_store_*/am_txn_*/am_audit_event call"
