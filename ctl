#!/usr/bin/env bash
# ctpanel set-up, run and test entry point (Debian 12, as root).
#
#   ./ctl up      install everything, start the panel with a local node
#   ./ctl down    stop what `up` started
#   ./ctl status  show what runs
#   ./ctl test    install everything, start test services, run the whole suite
#   ./ctl screenshots  regenerate docs/screenshots/ (real VPSs, real Chromium)
#   ./ctl manage ARGS  Django's manage.py with the quickstart's settings
#
# Every step is safe to run again. Services are started directly (no systemd
# here); production nodes use the units under deploy/systemd/.
set -Eeuo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VENV="$TOP/.venv"
PY="$VENV/bin/python"
DEBIAN_PYTHON=/usr/bin/python3
PANEL_USER=ctpanel

# System packages every node and the panel host need. Later issues add theirs here.
APT_PACKAGES=(
  postgresql redis-server
  python3-venv python3-dev
  busybox-static debootstrap btrfs-progs e2fsprogs quota nftables iproute2 lxcfs fuse3
  util-linux procps psmisc openssl ca-certificates cpio zstd acl curl iperf3
  chromium fonts-dejavu-core
  qemu-system-x86
)

log() { printf '\033[1mctl:\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31mctl: error:\033[0m %s\n' "$*" >&2; exit 1; }

need_root() {
  [ "$(id -u)" -eq 0 ] || die "run as root (sudo ./ctl $1): the node side creates containers, cgroups and mounts"
}

# --------------------------------------------------------------------------
# install

install_apt() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    missing+=(nodejs npm)
  fi
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  # Keep package scripts from starting the distribution's own services: ctpanel
  # runs its own PostgreSQL and Redis instances.
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; made_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || { [ $made_policy -eq 1 ] && rm -f "$policy"; die "apt-get install failed (see above)"; }
  [ $made_policy -eq 1 ] && rm -f "$policy"
  return 0
}

install_venv() {
  local stamp="$VENV/.ctpanel-installed"
  if [ -x "$PY" ] && [ -f "$stamp" ] && [ "$stamp" -nt "$TOP/pyproject.toml" ] \
     && [ "$stamp" -nt "$TOP/requirements.lock" ]; then
    return 0
  fi
  log "building the Python venv from $DEBIAN_PYTHON"
  [ -x "$PY" ] || "$DEBIAN_PYTHON" -m venv "$VENV"
  "$PY" -m pip install -q --disable-pip-version-check -c "$TOP/requirements.lock" -e "$TOP[dev]"
  touch "$stamp"
}

install_npm() {
  local stamp="$TOP/node_modules/.ctpanel-installed"
  if [ ! -f "$stamp" ] || [ "$TOP/package-lock.json" -nt "$stamp" ]; then
    log "installing front-end packages (npm ci)"
    (cd "$TOP" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    touch "$stamp"
  fi
  "$PY" "$TOP/deploy/vendor_static.py"
}

install_all() {
  need_root install
  install_apt
  install_venv
  install_npm
  id -u "$PANEL_USER" >/dev/null 2>&1 \
    || useradd --system --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin "$PANEL_USER"
}

# --------------------------------------------------------------------------
# services: one PostgreSQL cluster and one Redis per profile

profile() {
  # profile NAME: quickstart or test. Each has its own state root, ports and
  # cgroup prefix, so tests never touch a running quickstart.
  case "$1" in
    quickstart)
      HOME_DIR=${CTPANEL_HOME:-/var/lib/ctpanel}; PG_PORT=5440; REDIS_PORT=6390
      SETTINGS=panel.settings.dev; NODE_NAME=local; CGROUP_PREFIX=ctpanel
      PANEL_QUEUE=panel; REDIS_DB=0
      # A btrfs pool on a sparse loop file, and a network namespace of the node's
      # own as the "host" side of VPS networking: no uplink, so VPS traffic never
      # leaves the machine, and the machine's forwarding and ruleset stay as they are.
      NODE_EXTRA="CTPANEL_STORAGE_POOLS=fast:btrfs:$HOME_DIR/btrfs/pool
CTPANEL_NET_HOST_NETNS=ctpanel-$NODE_NAME" ;;
    test)
      HOME_DIR=${CTPANEL_TEST_HOME:-/var/lib/ctpanel-test}; PG_PORT=5441; REDIS_PORT=6391
      SETTINGS=panel.settings.test; NODE_NAME=test; CGROUP_PREFIX=ctpanel-test
      PANEL_QUEUE=panel-test; REDIS_DB=1; NODE_EXTRA="" ;;
    *) die "unknown profile $1" ;;
  esac
  ETC="$HOME_DIR/etc"; LOGS="$HOME_DIR/log"; RUN="$HOME_DIR/run"; KEYS="$HOME_DIR/keys"
}

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

prepare_dirs() {
  install -d -m 0755 "$HOME_DIR" "$LOGS" "$RUN"
  install -d -m 0750 -g "$PANEL_USER" "$ETC" "$KEYS"
}

secret() { "$DEBIAN_PYTHON" -c 'import secrets; print(secrets.token_urlsafe(48))'; }

write_env_files() {
  # Generated once; kept across runs. Secrets never leave $ETC.
  local secrets="$ETC/secrets.env"
  if [ ! -f "$secrets" ]; then
    umask 077
    {
      echo "CTPANEL_SECRET_KEY=$(secret)"
      echo "CTPANEL_DB_PASSWORD=$(secret)"
      echo "CTPANEL_REDIS_PASSWORD=$(secret)"
    } >"$secrets"
    umask 022
  fi
  # shellcheck disable=SC1090
  . "$secrets"
  local broker="redis://:${CTPANEL_REDIS_PASSWORD}@127.0.0.1:${REDIS_PORT}/${REDIS_DB}"
  umask 027
  cat >"$ETC/panel.env" <<EOF
DJANGO_SETTINGS_MODULE=$SETTINGS
CTPANEL_SECRET_KEY=$CTPANEL_SECRET_KEY
CTPANEL_DB_NAME=ctpanel
CTPANEL_DB_USER=ctpanel
CTPANEL_DB_PASSWORD=$CTPANEL_DB_PASSWORD
CTPANEL_DB_HOST=127.0.0.1
CTPANEL_DB_PORT=$PG_PORT
CTPANEL_BROKER_URL=$broker
CTPANEL_PANEL_QUEUE=$PANEL_QUEUE
CTPANEL_SIGNING_KEY=$KEYS/panel.key
CTPANEL_SIGNING_CERT=$KEYS/panel.crt
CTPANEL_TRUSTED_CERTS=$KEYS/trusted-by-panel
EOF
  umask 077
  cat >"$ETC/node-$NODE_NAME.env" <<EOF
CTPANEL_NODE_NAME=$NODE_NAME
CTPANEL_BROKER_URL=$broker
CTPANEL_PANEL_QUEUE=$PANEL_QUEUE
CTPANEL_SIGNING_KEY=$KEYS/node-$NODE_NAME.key
CTPANEL_SIGNING_CERT=$KEYS/node-$NODE_NAME.crt
CTPANEL_TRUSTED_CERTS=$KEYS/trusted-by-node
CTPANEL_STATE_ROOT=$HOME_DIR/node/$NODE_NAME
CTPANEL_CGROUP_PREFIX=$CGROUP_PREFIX
$NODE_EXTRA
EOF
  umask 022
  chgrp "$PANEL_USER" "$ETC/panel.env"
}

make_keys() {
  # The panel signs what it sends to nodes; each node signs its reports.
  # Each side trusts only the other side's certificate.
  "$PY" -m worker.keys ensure --dir "$KEYS" --name panel --group "$PANEL_USER"
  "$PY" -m worker.keys ensure --dir "$KEYS" --name "node-$NODE_NAME"
  install -d -m 0755 "$KEYS/trusted-by-panel" "$KEYS/trusted-by-node"
  # The panel worker also runs what the panel's own beat sends.
  install -m 0644 "$KEYS/node-$NODE_NAME.crt" "$KEYS/panel.crt" "$KEYS/trusted-by-panel/"
  install -m 0644 "$KEYS/panel.crt" "$KEYS/trusted-by-node/"
}

start_postgres() {
  local bin data="$HOME_DIR/pg" sock="$RUN/pg"
  bin=$(pg_bin); [ -n "$bin" ] || die "PostgreSQL binaries not found under /usr/lib/postgresql"
  install -d -m 0700 -o postgres -g postgres "$data" "$sock"
  if [ ! -f "$data/PG_VERSION" ]; then
    log "initialising PostgreSQL cluster in $data"
    runuser -u postgres -- "$bin/initdb" -D "$data" --auth-local=peer --auth-host=scram-sha-256 \
      -U postgres -E UTF8 --locale=C.UTF-8 >"$LOGS/initdb.log" 2>&1 || die "initdb failed: $LOGS/initdb.log"
    cat >>"$data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$sock'
fsync = $([ "$SETTINGS" = panel.settings.test ] && echo off || echo on)
EOF
    cat >"$data/pg_hba.conf" <<EOF
local all postgres peer
host  all all 127.0.0.1/32 scram-sha-256
EOF
  fi
  if ! runuser -u postgres -- "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    touch "$LOGS/postgres.log"; chown postgres "$LOGS/postgres.log"
    runuser -u postgres -- "$bin/pg_ctl" -D "$data" -l "$LOGS/postgres.log" -w -t 60 start >/dev/null \
      || die "PostgreSQL did not start: $LOGS/postgres.log"
  fi
  head -n 1 "$data/postmaster.pid" >"$RUN/postgres.pid"
  # shellcheck disable=SC1090
  . "$ETC/secrets.env"
  runuser -u postgres -- psql -h "$sock" -p "$PG_PORT" -qtA -v ON_ERROR_STOP=1 \
    -v pw="$CTPANEL_DB_PASSWORD" >/dev/null <<'EOF'
SELECT format('CREATE ROLE ctpanel LOGIN CREATEDB PASSWORD %L', :'pw')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ctpanel') \gexec
SELECT format('ALTER ROLE ctpanel PASSWORD %L', :'pw') \gexec
SELECT 'CREATE DATABASE ctpanel OWNER ctpanel'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'ctpanel') \gexec
EOF
}

start_redis() {
  local dir="$HOME_DIR/redis" conf="$HOME_DIR/redis/redis.conf"
  id -u redis >/dev/null 2>&1 || die "the redis user is missing: is redis-server installed?"
  install -d -m 0750 -o redis -g redis "$dir"
  # shellcheck disable=SC1090
  . "$ETC/secrets.env"
  umask 077
  cat >"$conf" <<EOF
bind 127.0.0.1 -::1
protected-mode yes
port $REDIS_PORT
requirepass $CTPANEL_REDIS_PASSWORD
dir $dir
appendonly yes
appendfsync always
daemonize no
logfile ""
EOF
  umask 022
  chown redis "$conf"
  if redis_ping; then return 0; fi
  # Ours but not answering to the current password (secrets regenerated): restart it.
  is_running redis && stop_named redis
  log "starting Redis on 127.0.0.1:$REDIS_PORT (password, append-only file)"
  spawn redis redis /dev/null "$(command -v redis-server)" "$conf"
  for _ in $(seq 50); do redis_ping && return 0; sleep 0.1; done
  die "Redis did not answer: $LOGS/redis.log"
}

redis_ping() {
  # shellcheck disable=SC1090
  . "$ETC/secrets.env"
  REDISCLI_AUTH="$CTPANEL_REDIS_PASSWORD" redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG
}

# spawn NAME USER ENVFILE CMD...: run CMD as USER in its own session with the
# env file's variables exported (never on a command line, where any user
# could read them); log and pid file under the profile.
spawn() {
  local name=$1 user=$2 envfile=$3; shift 3
  if is_running "$name"; then return 0; fi
  touch "$LOGS/$name.log"; chown "$user" "$LOGS/$name.log"
  (
    cd /
    set -a; . "$envfile"; set +a
    if [ "$user" = root ]; then
      exec setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null
    fi
    exec setsid setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups -- "$@" \
      >>"$LOGS/$name.log" 2>&1 </dev/null
  ) &
  echo $! >"$RUN/$name.pid"
  disown $!
}

is_running() {
  local pidf="$RUN/$1.pid"
  [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null
}

stop_named() {
  local pidf="$RUN/$1.pid" pid
  [ -f "$pidf" ] || return 0
  pid=$(cat "$pidf")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$pidf"
}

services_up() {
  prepare_dirs
  write_env_files
  make_keys
  start_postgres
  start_redis
}

# run_env FILE CMD...: run CMD with the variables of an env file exported.
run_env() {
  local file=$1; shift
  ( set -a; . "$file"; set +a; "$@" )
}

# --------------------------------------------------------------------------
# commands

# node_host_side: the quickstart node's btrfs pool (4 GiB sparse loop file) and
# its own network namespace. Both stay when `down` runs: VPSs keep running.
node_host_side() {
  local img="$HOME_DIR/btrfs.img" mnt="$HOME_DIR/btrfs"
  install -d -m 0700 "$mnt"
  if [ ! -f "$img" ]; then
    log "creating the btrfs storage pool ($img, 4 GiB sparse)"
    truncate -s 4G "$img"
    mkfs.btrfs -q "$img" >/dev/null || { rm -f "$img"; die "mkfs.btrfs failed"; }
  fi
  mountpoint -q "$mnt" || mount -o loop "$img" "$mnt" || die "cannot mount the btrfs pool $img"
  install -d -m 0700 "$mnt/pool"
  [ -e "/run/netns/ctpanel-$NODE_NAME" ] || ip netns add "ctpanel-$NODE_NAME"
}

cmd_up() {
  install_all
  profile quickstart
  services_up
  node_host_side
  grant_traverse "$PANEL_USER" "$TOP"
  local penv="$ETC/panel.env" nenv="$ETC/node-$NODE_NAME.env" celery="$VENV/bin/celery"
  run_env "$penv" "$PY" "$TOP/manage.py" migrate --noinput >/dev/null
  run_env "$penv" "$PY" "$TOP/manage.py" ensure_admin
  run_env "$penv" "$PY" "$TOP/manage.py" register_node "$NODE_NAME"
  run_env "$nenv" "$PY" -m worker.setup sysctl "$TOP/deploy/sysctl/90-ctpanel-node.conf"
  # favordynmods: a process joins a cgroup without an RCU wait (6-10 ms per VPS start and exec here).
  run_env "$nenv" "$PY" -m worker.setup cgroups || log "cgroup2 favordynmods not set: starts and execs stay slower"
  run_env "$nenv" "$PY" -m worker.setup templates

  install -d -m 0750 -o "$PANEL_USER" -g "$PANEL_USER" "$HOME_DIR/beat"
  spawn web "$PANEL_USER" "$penv" "$VENV/bin/uvicorn" panel.asgi:application \
    --app-dir "$TOP" --host 127.0.0.1 --port 8000 --no-server-header
  spawn panel-worker "$PANEL_USER" "$penv" "$celery" --workdir "$TOP" \
    -A panel.celery worker -Q "$PANEL_QUEUE" -n "panel@%h" --concurrency 2 --loglevel INFO
  spawn beat "$PANEL_USER" "$penv" "$celery" --workdir "$TOP" \
    -A panel.celery beat --schedule "$HOME_DIR/beat/schedule" --loglevel INFO
  # The supervisor parents the VPS inits and holds their consoles; VPSs outlive it.
  spawn supervisor root "$nenv" "$PY" -m worker.supervisor
  spawn node-worker root "$nenv" "$celery" --workdir "$TOP" \
    -A worker.celery_app worker -Q "node.$NODE_NAME" -n "node-$NODE_NAME@%h" --loglevel INFO
  # Browser consoles: meets the panel in Redis (no port of its own), talks to the supervisor's socket.
  spawn console-relay root "$nenv" "$PY" -m worker.console_relay

  local i
  for i in $(seq 150); do
    curl -fsS -o /dev/null http://127.0.0.1:8000/login/ 2>/dev/null && break; sleep 0.2
  done
  curl -fsS -o /dev/null http://127.0.0.1:8000/login/ || die "the panel did not answer; see $LOGS/web.log"
  run_env "$penv" "$PY" "$TOP/manage.py" ping_node "$NODE_NAME" --timeout 60 \
    || die "node $NODE_NAME did not answer a ping; see $LOGS/node-worker.log and $LOGS/panel-worker.log"
  log "logs and pid files: $LOGS, $RUN"
  log "panel is up: http://127.0.0.1:8000/  (stop with ./ctl down)"
}

# grant_traverse USER DIR: let USER reach DIR (e.g. a clone under /root, which
# is 0700) by granting search permission on each parent it cannot pass.
grant_traverse() {
  local user=$1 dir=$2 path=""
  local IFS=/
  for part in $dir; do
    [ -n "$part" ] || continue
    path="$path/$part"
    if ! runuser -u "$user" -- test -x "$path" 2>/dev/null; then
      log "granting $user search permission on $path (ACL u:$user:x)"
      setfacl -m "u:$user:x" "$path"
    fi
  done
  runuser -u "$user" -- test -r "$dir/manage.py" \
    || die "$user cannot read $dir; clone ctpanel where other users can read it (e.g. /opt/ctpanel)"
}

# manage ARGS: manage.py with the quickstart's settings (`./ctl manage createsuperuser`).
cmd_manage() {
  need_root manage
  profile quickstart
  [ -f "$ETC/panel.env" ] || die "no quickstart yet: run ./ctl up first"
  run_env "$ETC/panel.env" "$PY" "$TOP/manage.py" "$@"
}

cmd_down() {
  need_root down
  profile "${1:-quickstart}"
  local bin
  # VPSs keep running: stopping the supervisor and the node worker leaves them alone.
  for name in web panel-worker beat console-relay node-worker supervisor redis; do stop_named "$name"; done
  bin=$(pg_bin)
  if [ -n "$bin" ] && [ -f "$HOME_DIR/pg/PG_VERSION" ]; then
    runuser -u postgres -- "$bin/pg_ctl" -D "$HOME_DIR/pg" -m fast stop >/dev/null 2>&1 || true
    rm -f "$RUN/postgres.pid"
  fi
  log "stopped ($HOME_DIR)"
}

cmd_status() {
  profile "${1:-quickstart}"
  for name in postgres redis web panel-worker beat supervisor node-worker console-relay; do
    if is_running "$name"; then echo "$name: running (pid $(cat "$RUN/$name.pid"))"; else echo "$name: stopped"; fi
  done
}

cmd_test() {
  install_all
  profile test
  services_up
  export CTPANEL_TEST_NODE_ENV="$ETC/node-$NODE_NAME.env" CTPANEL_TEST_HOME="$HOME_DIR"
  set -a; . "$ETC/panel.env"; set +a
  # This run's own database, node name and panel queue: runs may overlap.
  export CTPANEL_TEST_RUN="$$" CTPANEL_PANEL_QUEUE="panel-test-$$"
  cd "$TOP"
  if [ $# -gt 0 ]; then
    exec "$PY" -m tests.run "$@"
  fi
  log "ruff";         "$VENV/bin/ruff" check .
  log "lint-imports"; "$VENV/bin/lint-imports" --no-cache
  log "migrations match the models"
  "$PY" manage.py makemigrations --check --dry-run >/dev/null \
    || die "models changed without a migration: run ./ctl manage makemigrations"
  log "check --deploy with production settings"
  CTPANEL_ALLOWED_HOSTS=panel.example.com DJANGO_SETTINGS_MODULE=panel.settings.prod \
    "$PY" manage.py check --deploy --fail-level WARNING
  "$PY" -m tests.run
}

# Regenerate docs/screenshots/: the main pages of each role, with real VPSs on a test node (destroyed after).
cmd_screenshots() {
  cmd_test tests/browser/screenshots.py -q "$@"
}

main() {
  local cmd=${1:-help}; shift || true
  case "$cmd" in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    status) cmd_status "$@" ;;
    test) cmd_test "$@" ;;
    screenshots) cmd_screenshots "$@" ;;
    install) install_all ;;
    manage) cmd_manage "$@" ;;
    *) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; [ "$cmd" = help ] || exit 2 ;;
  esac
}

main "$@"
