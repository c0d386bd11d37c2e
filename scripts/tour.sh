#!/usr/bin/env bash
# The README's five-minute tour, run word for word against a built tutti and
# checked step by step (CI runs it). The ports are the README's unless
# TOUR_SIP_PORT, TOUR_CONTROL_PORT, TOUR_HTTP_PORT say otherwise; TUTTI names the
# binary (default: the debug build; the README uses `cargo run --release --`).
# Needs sipp (sip-tester), nc (netcat-openbsd), curl. Loopback only; everything
# it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

TUTTI=${TUTTI:-${CARGO_TARGET_DIR:-target}/debug/tutti}
SIP=${TOUR_SIP_PORT:-5060}
CONTROL=${TOUR_CONTROL_PORT:-4011}
HTTP=${TOUR_HTTP_PORT:-8080}
work=$(mktemp -d)
server=""
sipp_pid=""

cleanup() {
  [ -n "$sipp_pid" ] && kill "$sipp_pid" 2>/dev/null || true
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "tour: FAILED: $*" >&2
  echo "--- server log ---" >&2
  tail -n 40 "$work/server.log" >&2 || true
  exit 1
}
step() { echo "tour: $*"; }

# The README must still show what this script runs.
for line in \
  '--sip-listen 127.0.0.1:5060 --control-listen 127.0.0.1:4011' \
  'curl -s http://127.0.0.1:8080/healthz' \
  "printf 'LOGIN,secret\\r\\nNEWCONF,4001,\"Acme, Ltd\",Ann,10,,,,\\r\\nLISTCONF\\r\\n' | nc -q 2 127.0.0.1 4011" \
  'cd scripts/sipp && sipp -sf uac_stay.xml -s 4001 -m 1 127.0.0.1:5060' \
  'MUTEUSER,<call-guid>,1' \
  'DROPUSER,<call-guid>' \
  'customer create --name "Acme"'; do
  grep -qF -- "$line" README.md || fail "README.md no longer shows: $line"
done

step "1. start on loopback with a control password"
"$TUTTI" --data-dir "$work/data" --sip-listen "127.0.0.1:$SIP" --control-listen "127.0.0.1:$CONTROL" \
  --http-listen "127.0.0.1:$HTTP" --events-listen 127.0.0.1:0 --control-password secret >"$work/stdout" 2>"$work/server.log" &
server=$!
for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$HTTP/healthz" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || fail "the server exited at start"
  sleep 0.1
done

step "2. is it up?"
health=$(curl -s "http://127.0.0.1:$HTTP/healthz")
echo "$health" | grep -q '"status":"ok"' || fail "healthz said $health"

step "3. create conference 4001 over TCP 4011 and list it"
out=$(printf 'LOGIN,secret\r\nNEWCONF,4001,"Acme, Ltd",Ann,10,,,,\r\nLISTCONF\r\n' | nc -q 2 127.0.0.1 "$CONTROL" | tr -d '\r')
echo "$out" | sed 's/^/    /'
guid=$(echo "$out" | sed -n 's/^LISTCONF,\([^,]*\),4001,"Acme, Ltd",0$/\1/p')
[ -n "$guid" ] || fail "no LISTCONF line for 4001"
expected=$(printf 'LOGIN,OK\nNEWCONF,OK\nNEWCONF,%s,4001,"Acme, Ltd"\nLISTCONF,%s,4001,"Acme, Ltd",0\nLISTCONF,OK' "$guid" "$guid")
[ "$out" = "$expected" ] || fail "step 3 printed something else than the README says"

step "4. dial in with SIPp; the caller stays until dropped"
(cd scripts/sipp && exec sipp -sf uac_stay.xml -s 4001 -m 1 "127.0.0.1:$SIP" -nostdin \
  -i 127.0.0.1 -mi 127.0.0.1 -timeout 60s -timeout_error >"$work/sipp.out" 2>&1) &
sipp_pid=$!
call=""
for _ in $(seq 1 100); do
  users=$({ printf 'LOGIN,secret\r\nLISTUSER,%s\r\n' "$guid"; sleep 0.3; } | nc -q 1 127.0.0.1 "$CONTROL" | tr -d '\r')
  call=$(echo "$users" | sed -n "s/^LISTUSER,$guid,\([^,]*\),.*/\1/p")
  [ -n "$call" ] && break
  sleep 0.1
done
[ -n "$call" ] || fail "the SIPp caller never showed in LISTUSER"
echo "    LISTUSER,$guid,$call,..."

step "5. watch it live: mute the caller, then drop it"
out=$({ printf 'LOGIN,secret\r\nMUTEUSER,%s,1\r\nDROPUSER,%s\r\n' "$call" "$call"; sleep 1; } |
  nc -q 1 127.0.0.1 "$CONTROL" | tr -d '\r')
echo "$out" | sed 's/^/    /'
echo "$out" | grep -qx 'MUTEUSER,OK' || fail "MUTEUSER was not OK"
echo "$out" | grep -qx 'DROPUSER,OK' || fail "DROPUSER was not OK"
echo "$out" | grep -q "^DELUSER,$guid,$call," || fail "no DELUSER event"
wait "$sipp_pid" || fail "SIPp did not end cleanly: $(cat "$work/sipp.out")"
sipp_pid=""

step "6. accounts and settings"
created=$("$TUTTI" --data-dir "$work/data" customer create --name "Acme")
echo "    $created"
echo "$created" | grep -Eq '^\{"uid":"[^"]+","name":"Acme","api_key":"[A-Za-z0-9]{32}"\}$' ||
  fail "customer create printed $created"
"$TUTTI" --data-dir "$work/data" config | grep -q '^sip-listen = ' || fail "config printed no settings"

step "7. stop it with SIGINT: exit 0"
kill -INT "$server"
status=0
wait "$server" || status=$?
server=""
[ "$status" -eq 0 ] || fail "the server exited $status"
grep -q 'stopped' "$work/server.log" || fail "no 'stopped' in the log"
echo "tour: all seven steps as the README says"
