#!/usr/bin/env bash
# Throw-away single-node Ceph cluster (1 mon, 1 memstore OSD, 1 RADOS Gateway) for tests.
#
# Usage: ceph.sh COMMAND DIR RGW_PORT [MON_PORT]
#   DIR       folder holding config, keyrings, logs, pid files (created on start)
#   RGW_PORT  S3 endpoint port, http://127.0.0.1:RGW_PORT
#   MON_PORT  monitor port (msgr v2), default RGW_PORT+1
#
# Commands:
#   start        create the cluster on first use, start mon, osd and rgw, wait until S3
#                answers, create the S3 user; prints shell `export` lines:
#                  BITS_TEST_S3_ENDPOINT, BITS_TEST_S3_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
#   stop         stop every gateway, the osd and the mon (memstore: object data is lost)
#   kill         SIGKILL every daemon of the cluster at once (fast teardown of a throw-away run)
#   stop-rgw     stop only the gateway on RGW_PORT (the cluster keeps its data)
#   start-rgw    start a gateway on RGW_PORT (any free port: a second gateway on the same
#                cluster, same data and users) and wait until S3 answers
#   restart-rgw  stop-rgw then start-rgw
#   status       exit 0 when S3 answers on RGW_PORT, 1 otherwise
#   env          print the export lines again (cluster already made)
#
# Env: CEPH_MEMSTORE_BYTES (default 4 GiB), CEPH_READY_TIMEOUT_S (default 90),
#      S3 user keys are fixed per DIR (generated at first start, kept in DIR/s3user.env).
set -euo pipefail

cmd="${1:-}"; dir="${2:-}"; rgw_port="${3:-}"
if [[ -z "$cmd" || -z "$dir" || -z "$rgw_port" ]]; then
  echo "usage: $0 {start|stop|kill|stop-rgw|start-rgw|restart-rgw|status|env} DIR RGW_PORT [MON_PORT]" >&2; exit 2
fi
mon_port="${4:-$((rgw_port + 1))}"
timeout_s="${CEPH_READY_TIMEOUT_S:-90}"
mem_bytes="${CEPH_MEMSTORE_BYTES:-4294967296}"
for b in ceph-mon ceph-osd radosgw ceph ceph-authtool monmaptool radosgw-admin; do
  command -v "$b" >/dev/null || { echo "ceph.sh: $b not found; run scripts/services/install.sh" >&2; exit 3; }
done
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
conf="$dir/ceph.conf"
CEPH=(ceph -c "$conf" -n client.admin -k "$dir/admin.keyring" --connect-timeout 10)

log() { echo "ceph.sh: $*" >&2; }
die() { log "$*"; exit 5; }

s3_ready() { curl -s -o /dev/null -m 3 -w '%{http_code}' "http://127.0.0.1:${1:-$rgw_port}/" 2>/dev/null | grep -q '^200$'; }

wait_until() { # wait_until SECONDS DESCRIPTION CMD...
  local limit="$1" what="$2"; shift 2
  local start=$SECONDS
  until "$@" >/dev/null 2>&1; do
    if (( SECONDS - start >= limit )); then return 1; fi
    sleep 0.5
  done
  log "$what after $((SECONDS - start))s"
}

pid_alive() { [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pidfile() { # stop_pidfile FILE NAME
  local f="$1" pid i
  [[ -s "$f" ]] || return 0
  pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then log "$2 did not stop in 10s, killing"; kill -KILL "$pid" 2>/dev/null || true; sleep 0.2; fi
  fi
  rm -f "$f"
}

make_cluster() {
  [[ -s "$dir/.made" ]] && return 0
  local fsid osd_uuid
  fsid="$(cat /proc/sys/kernel/random/uuid)"
  osd_uuid="$(cat /proc/sys/kernel/random/uuid)"
  cat > "$conf" <<CONF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
public addr = 127.0.0.1
public network = 127.0.0.0/8
ms bind msgr1 = false
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
run dir = $dir
admin socket = $dir/\$name.asok
pid file = $dir/\$name.pid
log file = $dir/\$name.log
log to stderr = false
err to stderr = true
mon cluster log file = $dir/cluster.log
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false
mon max pg per osd = 1000
mon data avail warn = 1
mon data avail crit = 0
[client.admin]
keyring = $dir/admin.keyring
[mon]
paxos propose interval = 0.1
mon data = $dir/mon.\$id
mon initial members = a
[osd]
osd data = $dir/osd.\$id
osd objectstore = memstore
memstore device bytes = $mem_bytes
osd max object size = 134217728
osd op num shards = 1
osd op num threads per shard = 2
[client.rgw]
keyring = $dir/rgw.keyring
rgw data = $dir/rgw
rgw thread pool size = 128
rgw enable usage log = false
rgw dns name = 127.0.0.1
CONF
  ceph-authtool --create-keyring "$dir/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool --create-keyring "$dir/admin.keyring" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
  ceph-authtool --create-keyring "$dir/osd.0.keyring" --gen-key -n osd.0 \
    --cap mon 'allow profile osd' --cap mgr 'allow profile osd' --cap osd 'allow *' >/dev/null
  ceph-authtool --create-keyring "$dir/rgw.keyring" --gen-key -n client.rgw \
    --cap mon 'allow rw' --cap osd 'allow rwx' --cap mgr 'allow rw' >/dev/null
  for k in admin osd.0 rgw; do ceph-authtool "$dir/mon.keyring" --import-keyring "$dir/$k.keyring" >/dev/null; done
  monmaptool --create --addv a "[v2:127.0.0.1:$mon_port]" --fsid "$fsid" "$dir/monmap" >/dev/null
  mkdir -p "$dir/mon.a" "$dir/osd.0" "$dir/rgw"
  ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/mon.keyring" >"$dir/mkfs-mon.log" 2>&1 \
    || { cat "$dir/mkfs-mon.log" >&2; die "ceph-mon --mkfs failed"; }
  start_mon
  "${CEPH[@]}" osd create "$osd_uuid" 0 >/dev/null || die "osd create failed"
  ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$osd_uuid" --keyring "$dir/osd.0.keyring" >"$dir/mkfs-osd.log" 2>&1 \
    || { cat "$dir/mkfs-osd.log" >&2; die "ceph-osd --mkfs failed"; }
  cp "$dir/osd.0.keyring" "$dir/osd.0/keyring"
  echo "$fsid" > "$dir/.made"
}

start_mon() {
  pid_alive "$dir/mon.a.pid" && return 0
  ceph-mon -c "$conf" -i a >>"$dir/mon.a.stderr" 2>&1 || die "ceph-mon failed to start, see $dir/mon.a.log"
  wait_until "$timeout_s" "mon up" "${CEPH[@]}" mon stat || die "monitor not reachable on 127.0.0.1:$mon_port within ${timeout_s}s (see $dir/mon.a.log)"
}

osd_up() { "${CEPH[@]}" osd stat -f json | grep -q '"num_up_osds":1'; }

start_osd() {
  pid_alive "$dir/osd.0.pid" && return 0
  ceph-osd -c "$conf" -i 0 --keyring "$dir/osd.0/keyring" >>"$dir/osd.0.stderr" 2>&1 || die "ceph-osd failed to start, see $dir/osd.0.log"
  wait_until "$timeout_s" "osd up" osd_up || die "osd.0 not up within ${timeout_s}s (see $dir/osd.0.log)"
}

rgw_pidfile() { echo "$dir/rgw.$1.pid"; }

start_rgw() { # start_rgw PORT: a gateway on the cluster, one per port (the first is the main one)
  local port="$1" pidf
  pidf="$(rgw_pidfile "$port")"
  if ! pid_alive "$pidf"; then
    # tcp_nodelay: without it every small answer with a body (GetObject, ListParts, DeleteObjects)
    # waits ~40 ms for the client's delayed ACK (Nagle), which dominates small fragments.
    radosgw -c "$conf" -n client.rgw -k "$dir/rgw.keyring" --rgw-frontends "beast endpoint=127.0.0.1:$port tcp_nodelay=1" \
      --pid-file "$pidf" --admin-socket "$dir/rgw.$port.asok" --log-file "$dir/rgw.$port.log" \
      >>"$dir/rgw.$port.stderr" 2>&1 || die "radosgw failed to start, see $dir/rgw.$port.log"
  fi
  wait_until "$timeout_s" "rgw answers on 127.0.0.1:$port" s3_ready "$port" \
    || die "radosgw not answering on http://127.0.0.1:$port within ${timeout_s}s (see $dir/rgw.$port.log)"
}

stop_all_rgw() {
  local f
  for f in "$dir"/rgw.*.pid; do [[ -e "$f" ]] && stop_pidfile "$f" radosgw; done
  return 0
}

make_pools() { # the gateway's bucket pools, made up front so the first test's bucket is not slow
  [[ -s "$dir/.pools" ]] && return 0
  local p
  # one CLI process for all (each start of the python CLI costs ~0.4 s)
  for p in .rgw.root default.rgw.control default.rgw.meta default.rgw.log \
    default.rgw.buckets.index default.rgw.buckets.data default.rgw.buckets.non-ec; do
    echo "osd pool create $p 8 8"
    echo "osd pool application enable $p rgw"
  done | "${CEPH[@]}" >"$dir/pools.log" 2>&1 || { cat "$dir/pools.log" >&2; die "pool create failed"; }
  grep -q "application 'rgw' on pool 'default.rgw.buckets.non-ec'" "$dir/pools.log" || { cat "$dir/pools.log" >&2; die "pool create failed"; }
  echo ok > "$dir/.pools"
}

warm_up() { # first bucket and object on a fresh cluster take seconds: pay that here, once
  [[ -s "$dir/.warm" ]] && return 0
  # shellcheck disable=SC1091
  source "$dir/s3user.env"
  local u="http://127.0.0.1:$rgw_port/bits-warm-up" i code
  local sig=(--aws-sigv4 "aws:amz:us-east-1:s3" --user "$AK:$SK" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' -m 30)
  for ((i = 0; i < 5; i++)); do
    code="$(curl -s -o /dev/null -w '%{http_code}' "${sig[@]}" -X PUT "$u")" || true
    [[ "$code" == 200 ]] && break
    sleep 1
  done
  [[ "$code" == 200 ]] || die "warm-up bucket create answered $code"
  curl -s -o /dev/null "${sig[@]}" -X PUT --data-binary warm "$u/o" || true
  curl -s -o /dev/null "${sig[@]}" -X DELETE "$u/o" || true
  curl -s -o /dev/null "${sig[@]}" -X DELETE "$u" || true
  echo ok > "$dir/.warm"
}

ensure_user() {
  if [[ ! -s "$dir/s3user.env" ]]; then
    local ak sk
    ak="BITS$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F | head -c 16)"
    sk="$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40)"
    radosgw-admin -c "$conf" -n client.admin -k "$dir/admin.keyring" user create --uid bits-test \
      --display-name "bits test" --access-key "$ak" --secret "$sk" >"$dir/user.json" 2>"$dir/user.err" \
      || { cat "$dir/user.err" >&2; die "radosgw-admin user create failed"; }
    printf 'AK=%s\nSK=%s\n' "$ak" "$sk" > "$dir/s3user.env"
  fi
}

print_env() {
  # shellcheck disable=SC1091
  source "$dir/s3user.env"
  cat <<ENV
export BITS_TEST_S3_ENDPOINT=http://127.0.0.1:$rgw_port
export BITS_TEST_S3_REGION=us-east-1
export AWS_ACCESS_KEY_ID=$AK
export AWS_SECRET_ACCESS_KEY=$SK
ENV
}

case "$cmd" in
  start)
    make_cluster
    start_mon
    start_osd
    make_pools
    start_rgw "$rgw_port"
    ensure_user
    warm_up
    print_env
    ;;
  stop)
    stop_all_rgw
    stop_pidfile "$dir/osd.0.pid" ceph-osd
    stop_pidfile "$dir/mon.a.pid" ceph-mon
    ;;
  kill)
    for f in "$dir"/rgw.*.pid "$dir/osd.0.pid" "$dir/mon.a.pid"; do
      [[ -s "$f" ]] && { kill -KILL "$(cat "$f")" 2>/dev/null || true; rm -f "$f"; }
    done
    ;;
  stop-rgw) stop_pidfile "$(rgw_pidfile "$rgw_port")" radosgw ;;
  start-rgw) [[ -s "$dir/.made" ]] || die "no cluster in $dir: run start first"; start_rgw "$rgw_port" ;;
  restart-rgw) stop_pidfile "$(rgw_pidfile "$rgw_port")" radosgw; start_rgw "$rgw_port" ;;
  status) s3_ready ;;
  env) print_env ;;
  *) echo "usage: $0 {start|stop|kill|stop-rgw|start-rgw|restart-rgw|status|env} DIR RGW_PORT [MON_PORT]" >&2; exit 2 ;;
esac
