#!/usr/bin/env bash
# A real PostgreSQL and a real single-node Apache Kafka (KRaft) on 127.0.0.1, without Docker.
#
#   deploy/local/stack.sh start    install what is missing, start both, wait until they answer
#   deploy/local/stack.sh stop     stop both (by pid, cleanly)
#   deploy/local/stack.sh status   say what runs
#   deploy/local/stack.sh env      print the connection settings as shell exports
#   deploy/local/stack.sh reset    stop both and delete their data (the next start is empty)
#
# Everything lives under .local/ (ignored by git): data, logs, pids, the Kafka jars, and the
# Kafka passwords. A second `start` while both run is harmless. PostgreSQL runs with durable
# settings (fsync and synchronous_commit on) because the benchmarks measure durable commits.
#
# Kafka authenticates every client (SASL PLAIN) and authorises it by ACLs: one principal
# per service, `admin` (a super user: topics, ACLs, tests, tools) and the read-only
# `subscriber`. Their passwords are generated once into .local/kafka/passwords (mode 600,
# `name=password` lines); .local/env gives the admin's and names that file, from which
# clr_dev starts each service as its own principal. The ACLs are created with the topics
# (`make topics`, deploy/kafka/topics.toml). A Kafka started with another configuration
# (say, from before authentication) is restarted by `start`, keeping its data.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/deploy/local"
STATE=${CLR_STATE_DIR:-$ROOT/.local}
PG_PORT=${CLR_PG_PORT:-55432}
KAFKA_PORT=${CLR_KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${CLR_KAFKA_CONTROLLER_PORT:-19093}
PG_DIR="$STATE/postgres"
KAFKA_DIR="$STATE/kafka"
KAFKA_LIBS="$KAFKA_DIR/libs"
KAFKA_PASSWORDS="$KAFKA_DIR/passwords"
# the Kafka principals (deploy/kafka/topics.toml grants each service and subscriber its ACLs)
PRINCIPALS="admin collaboration training_certification assessments label_decisions projections subscriber"

log() { printf '[stack] %s\n' "$*" >&2; }
# a process that runs: not gone, and not a zombie (a server killed with -9 stays one until
# its parent, often an init that reaps late, collects it; kill -0 alone calls it running)
alive() { kill -0 "$1" 2>/dev/null && [ "$(ps -o stat= -p "$1" 2>/dev/null | cut -c1)" != Z ]; }
die() { log "error: $*"; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root (or sudo) to run: $*"
  fi
}

apt_install() {
  log "installing $* from Debian's packages"
  if [ ! -f "$STATE/.apt-updated" ]; then
    as_root apt-get update -qq
    mkdir -p "$STATE" && touch "$STATE/.apt-updated"
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

pg_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$d" ] && [ -x "$d/pg_ctl" ] && echo "$d"
}

env_exports() {
  kafka_passwords
  cat <<EOF
export CLR_DATABASE_URL=postgresql://postgres@127.0.0.1:$PG_PORT/postgres
export CLR_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT
export CLR_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT
export CLR_KAFKA_SASL_MECHANISM=PLAIN
export CLR_KAFKA_USERNAME=admin
export CLR_KAFKA_PASSWORD=$(password_of admin)
export CLR_KAFKA_PASSWORDS_FILE=$KAFKA_PASSWORDS
EOF
}

# ---------------------------------------------------------------- PostgreSQL
pg_running() {
  [ -f "$PG_DIR/data/postmaster.pid" ] && alive "$(head -n 1 "$PG_DIR/data/postmaster.pid")"
}

pg_start() {
  if pg_running; then log "postgresql already running on 127.0.0.1:$PG_PORT"; return; fi
  local bin
  bin=$(pg_bindir) || true
  if [ -z "$bin" ]; then apt_install postgresql; bin=$(pg_bindir) || die "no pg_ctl after install"; fi
  mkdir -p "$PG_DIR"
  # PostgreSQL refuses to run as root: run it as the postgres user when we are root.
  local run=()
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir "$PG_DIR" postgres
    chown -R postgres: "$PG_DIR"
    run=(runuser -u postgres --)
    if ! runuser -u postgres -- test -w "$PG_DIR"; then
      # the checkout sits below a directory the postgres user may not enter: keep the data
      # in a folder of its own outside, linked from .local/postgres
      local outside="${TMPDIR:-/tmp}/clr-postgres-$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)"
      log "postgres cannot reach $PG_DIR; using $outside"
      mkdir -p "$outside" && chown postgres: "$outside" && chmod 700 "$outside"
      rm -rf "$PG_DIR" && ln -s "$outside" "$PG_DIR"
      PG_DIR="$outside"
    fi
    cd "$PG_DIR"  # the server process starts in a directory it may enter
  fi
  if [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
    log "initialising a PostgreSQL cluster in $PG_DIR/data"
    "${run[@]}" "$bin/initdb" -D "$PG_DIR/data" -U postgres --auth=trust -E UTF8 >"$PG_DIR/initdb.log"
  fi
  log "starting postgresql on 127.0.0.1:$PG_PORT"
  "${run[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 start \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c max_connections=300 -c shared_buffers=256MB -c fsync=on -c synchronous_commit=on" \
    >/dev/null || { tail -n 30 "$PG_DIR/server.log" >&2; die "postgresql did not start"; }
}

pg_stop() {
  pg_running || { log "postgresql not running"; return; }
  local pid
  pid=$(head -n 1 "$PG_DIR/data/postmaster.pid")
  log "stopping postgresql (pid $pid)"
  kill -INT "$pid"  # fast shutdown: roll back open transactions, checkpoint, exit
  for _ in $(seq 1 100); do alive "$pid" || return 0; sleep 0.1; done
  die "postgresql (pid $pid) did not stop"
}

# --------------------------------------------------------------------- Kafka
kafka_passwords() {
  # one random password per principal, made once (a principal added later gets one too)
  mkdir -p "$KAFKA_DIR"
  ( umask 077; touch "$KAFKA_PASSWORDS" )
  local name
  for name in $PRINCIPALS; do
    grep -q "^$name=" "$KAFKA_PASSWORDS" || \
      printf '%s=%s\n' "$name" "$(head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32)" \
        >>"$KAFKA_PASSWORDS"
  done
}

password_of() { sed -n "s/^$1=//p" "$KAFKA_PASSWORDS"; }

kafka_config() {
  # server.properties from the template: ports, data folder, and the JAAS logins (the
  # broker logs in as admin; user_<name> lists who may log in, with which password)
  kafka_passwords
  local admin users="" name
  admin=$(password_of admin)
  for name in $PRINCIPALS; do users+=" user_$name=\"$(password_of "$name")\""; done
  sed -e "s|@PORT@|$KAFKA_PORT|g" -e "s|@CPORT@|$KAFKA_CONTROLLER_PORT|g" -e "s|@DATA@|$KAFKA_DIR/data|g" \
    -e "s|@ADMIN_LOGIN@|username=\"admin\" password=\"$admin\"|g" \
    -e "s|@ADMIN_USER@|user_admin=\"$admin\"|g" -e "s|@USERS@|${users# }|g" \
    "$HERE/kafka/server.properties.in"
}

kafka_running() {
  [ -f "$KAFKA_DIR/kafka.pid" ] && alive "$(cat "$KAFKA_DIR/kafka.pid")"
}

kafka_fetch() {
  # The jars are resolved once and kept under .local/ (and Maven's own cache): the second
  # start is offline. A marker file says the copy finished.
  [ -f "$KAFKA_LIBS/.complete" ] && return
  command -v java >/dev/null || apt_install default-jre-headless
  command -v mvn >/dev/null || apt_install maven
  log "resolving the Kafka broker jars from Maven Central (once)"
  rm -rf "$KAFKA_LIBS"
  mvn -q -B -f "$HERE/kafka/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS" >&2
  touch "$KAFKA_LIBS/.complete"
}

kafka_start() {
  local wanted
  wanted=$(kafka_config)
  if kafka_running; then
    if [ "$wanted" = "$(cat "$KAFKA_DIR/server.properties" 2>/dev/null)" ]; then
      log "kafka already running on 127.0.0.1:$KAFKA_PORT"; return
    fi
    # say, a broker from before authentication and ACLs: its data stays, its configuration
    # changes (and its clients need the credentials in .local/env from now on)
    log "kafka runs with an older configuration (without SASL and ACLs?): restarting it"
    kafka_stop
  fi
  kafka_fetch
  mkdir -p "$KAFKA_DIR/data"
  ( umask 077; printf '%s\n' "$wanted" >"$KAFKA_DIR/server.properties" )
  local logcfg="-Dlog4j2.configurationFile=$HERE/kafka/log4j2.properties"
  if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
    local cluster_id
    cluster_id=$(java "$logcfg" -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool random-uuid)
    java "$logcfg" -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format \
      -t "$cluster_id" -c "$KAFKA_DIR/server.properties" >/dev/null
  fi
  log "starting kafka on 127.0.0.1:$KAFKA_PORT"
  : >"$KAFKA_DIR/kafka.log"
  nohup java -Xms256m -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    "$logcfg" -Dkafka.logs.dir="$KAFKA_DIR" -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_DIR/server.properties" \
    >"$KAFKA_DIR/kafka.log" 2>&1 </dev/null &
  echo $! >"$KAFKA_DIR/kafka.pid"
  for _ in $(seq 1 240); do
    grep -q "Kafka Server started" "$KAFKA_DIR/kafka.log" && return 0
    kafka_running || { tail -n 40 "$KAFKA_DIR/kafka.log" >&2; die "kafka exited during start-up"; }
    sleep 0.5
  done
  tail -n 40 "$KAFKA_DIR/kafka.log" >&2
  die "kafka did not report 'Kafka Server started' within 120 s"
}

kafka_stop() {
  kafka_running || { log "kafka not running"; return; }
  local pid
  pid=$(cat "$KAFKA_DIR/kafka.pid")
  log "stopping kafka (pid $pid)"
  kill -TERM "$pid"  # controlled shutdown
  for _ in $(seq 1 300); do
    alive "$pid" || { rm -f "$KAFKA_DIR/kafka.pid"; return 0; }
    sleep 0.1
  done
  log "kafka did not stop within 30 s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$KAFKA_DIR/kafka.pid"
}

# ---------------------------------------------------------------------- main
case "${1:-}" in
  start)
    mkdir -p "$STATE"
    pg_start
    kafka_start
    ( umask 077; env_exports >"$STATE/env" )
    log "ready; connection settings (with the admin's Kafka password) in $STATE/env"
    ;;
  stop)
    kafka_stop
    pg_stop
    ;;
  reset)
    # every event store, read model, offset and topic goes; the Kafka jars stay
    kafka_stop
    pg_stop
    log "deleting the PostgreSQL cluster and the Kafka log under $STATE"
    rm -rf "$PG_DIR/data" "$KAFKA_DIR/data" "$STATE/logs"
    ;;
  status)
    if pg_running; then echo "postgresql: running on 127.0.0.1:$PG_PORT"; else echo "postgresql: stopped"; fi
    if kafka_running; then echo "kafka: running on 127.0.0.1:$KAFKA_PORT"; else echo "kafka: stopped"; fi
    ;;
  env)
    env_exports
    ;;
  browser)
    # the headless browser of the page tests: Debian's chromium, never a browser download
    command -v chromium >/dev/null || apt_install chromium
    log "chromium: $(command -v chromium)"
    ;;
  prometheus)
    # Prometheus and promtool for the alert rule tests and the scrape test: Debian's package
    # (its service is not started here; the tests run their own)
    command -v promtool >/dev/null && command -v prometheus >/dev/null \
      || apt_install --no-install-recommends prometheus
    log "prometheus: $(command -v prometheus), promtool: $(command -v promtool)"
    ;;
  *)
    echo "usage: $0 start|stop|status|env|browser|prometheus|reset" >&2
    exit 2
    ;;
esac
