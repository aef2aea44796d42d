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
#
# CLR_KAFKA_BROKERS=3: a Kafka cluster of three KRaft nodes (each broker and controller)
# instead of one: node N listens on CLR_KAFKA_PORT + 2 (N - 1), its controller on
# CLR_KAFKA_CONTROLLER_PORT + 2 (N - 1), its data in .local/kafka/node<N> (node 1 in
# .local/kafka as a single broker's); topics get three replicas and a write is taken
# (acks=all) once two have it (min.insync.replicas 2), so one broker can go away with no
# outage. `start` also starts a node that died; later commands without the variable
# act on every node. Changing the number of brokers needs `reset` first (the
# controllers' quorum is fixed when the data is made).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/deploy/local"
STATE=${CLR_STATE_DIR:-$ROOT/.local}
PG_PORT=${CLR_PG_PORT:-55432}
KAFKA_PORT=${CLR_KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${CLR_KAFKA_CONTROLLER_PORT:-19093}
# CLR_PG_MAX_CONNECTIONS (default 300): more for several test sessions on one stack at once
PG_DIR="$STATE/postgres"
KAFKA_DIR="$STATE/kafka"
KAFKA_LIBS="$KAFKA_DIR/libs"
KAFKA_PASSWORDS="$KAFKA_DIR/passwords"
# brokers: as asked, else as many as the data was made for (stop, status: every node)
KAFKA_BROKERS=${CLR_KAFKA_BROKERS:-$(cat "$KAFKA_DIR/brokers" 2>/dev/null || echo 1)}
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
export CLR_KAFKA_BOOTSTRAP_SERVERS=$(kafka_bootstrap)
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
  # durable commits; checkpoints by time rather than every GB of WAL (at a few thousand
  # commands a second 1 GB went by in minutes, and each checkpoint's full-page writes
  # made the next seconds slower: a benchmark's runs swung by a third)
  "${run[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 start \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c max_connections=${CLR_PG_MAX_CONNECTIONS:-300} -c shared_buffers=256MB -c fsync=on -c synchronous_commit=on -c max_wal_size=4GB -c checkpoint_timeout=15min" \
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

# node N of the cluster (1 .. KAFKA_BROKERS): its folder and ports
node_dir() { if [ "$1" = 1 ]; then echo "$KAFKA_DIR"; else echo "$KAFKA_DIR/node$1"; fi; }
node_port() { echo $((KAFKA_PORT + 2 * ($1 - 1))); }
node_cport() { echo $((KAFKA_CONTROLLER_PORT + 2 * ($1 - 1))); }
nodes() { seq 1 "$KAFKA_BROKERS"; }

kafka_bootstrap() {
  local n servers=""
  for n in $(nodes); do servers+=",127.0.0.1:$(node_port "$n")"; done
  echo "${servers#,}"
}

kafka_config() {
  # node $1's server.properties from the template: ports, data folder, the quorum, the
  # replication, and the JAAS logins (the broker logs in as admin; user_<name> lists who
  # may log in, with which password)
  kafka_passwords
  local node=$1 admin users="" name voters="" n rf=1 minisr=1 cluster='/@CLUSTER@/d'
  admin=$(password_of admin)
  for name in $PRINCIPALS; do users+=" user_$name=\"$(password_of "$name")\""; done
  for n in $(nodes); do voters+=",$n@127.0.0.1:$(node_cport "$n")"; done
  if [ "$KAFKA_BROKERS" -gt 1 ]; then
    rf=$((KAFKA_BROKERS < 3 ? KAFKA_BROKERS : 3)); minisr=$((rf - 1)); cluster='s/@CLUSTER@//'
  fi
  sed -e "$cluster" -e "s|@NODE@|$node|g" -e "s|@VOTERS@|${voters#,}|g" \
    -e "s|@RF@|$rf|g" -e "s|@MINISR@|$minisr|g" \
    -e "s|@PORT@|$(node_port "$node")|g" -e "s|@CPORT@|$(node_cport "$node")|g" \
    -e "s|@DATA@|$(node_dir "$node")/data|g" \
    -e "s|@ADMIN_LOGIN@|username=\"admin\" password=\"$admin\"|g" \
    -e "s|@ADMIN_USER@|user_admin=\"$admin\"|g" -e "s|@USERS@|${users# }|g" \
    "$HERE/kafka/server.properties.in"
}

kafka_running() {
  local n
  for n in $(nodes); do node_running "$n" || return 1; done
}

node_running() {
  local dir
  dir=$(node_dir "$1")
  [ -f "$dir/kafka.pid" ] && alive "$(cat "$dir/kafka.pid")"
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
  local n started=""
  mkdir -p "$KAFKA_DIR"
  if [ -f "$KAFKA_DIR/data/meta.properties" ] && \
     [ "$(cat "$KAFKA_DIR/brokers" 2>/dev/null || echo 1)" != "$KAFKA_BROKERS" ]; then
    die "kafka's data is for $(cat "$KAFKA_DIR/brokers" 2>/dev/null || echo 1) brokers, not $KAFKA_BROKERS: reset first"
  fi
  echo "$KAFKA_BROKERS" >"$KAFKA_DIR/brokers"
  for n in $(nodes); do
    node_start "$n" && started+=" $n"
  done
  for n in $started; do node_wait "$n"; done
}

# the configuration compared without its comments: a comment changed restarts nothing
settings_of() { grep -v '^#' || true; }

node_start() {
  # starts node $1 unless it runs with the wanted configuration (then returns 1)
  local node=$1 dir wanted
  dir=$(node_dir "$node")
  wanted=$(kafka_config "$node")
  if node_running "$node"; then
    if [ "$(settings_of <<<"$wanted")" = "$(settings_of <"$dir/server.properties" 2>/dev/null)" ]; then
      log "kafka node $node already running on 127.0.0.1:$(node_port "$node")"; return 1
    fi
    # say, a broker from before authentication and ACLs: its data stays, its configuration
    # changes (and its clients need the credentials in .local/env from now on)
    log "kafka node $node runs with an older configuration: restarting it"
    node_stop "$node"
  fi
  kafka_fetch
  mkdir -p "$dir/data"
  ( umask 077; printf '%s\n' "$wanted" >"$dir/server.properties" )
  local logcfg="-Dlog4j2.configurationFile=$HERE/kafka/log4j2.properties"
  if [ ! -f "$dir/data/meta.properties" ]; then
    # one cluster id for every node, made with the first
    [ -s "$KAFKA_DIR/cluster-id" ] && [ "$KAFKA_BROKERS" -gt 1 ] || \
      java "$logcfg" -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool random-uuid >"$KAFKA_DIR/cluster-id"
    java "$logcfg" -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format \
      -t "$(cat "$KAFKA_DIR/cluster-id")" -c "$dir/server.properties" >/dev/null
  fi
  log "starting kafka node $node on 127.0.0.1:$(node_port "$node")"
  : >"$dir/kafka.log"
  nohup java -Xms256m -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    "$logcfg" -Dkafka.logs.dir="$dir" -cp "$KAFKA_LIBS/*" kafka.Kafka "$dir/server.properties" \
    >"$dir/kafka.log" 2>&1 </dev/null &
  echo $! >"$dir/kafka.pid"
}

node_wait() {
  local node=$1 dir
  dir=$(node_dir "$node")
  for _ in $(seq 1 240); do
    grep -q "Kafka Server started" "$dir/kafka.log" && return 0
    node_running "$node" || { tail -n 40 "$dir/kafka.log" >&2; die "kafka node $node exited during start-up"; }
    sleep 0.5
  done
  tail -n 40 "$dir/kafka.log" >&2
  die "kafka node $node did not report 'Kafka Server started' within 120 s"
}

kafka_stop() {
  local n
  for n in $(nodes); do node_stop "$n"; done
}

node_stop() {
  local node=$1 dir pid
  dir=$(node_dir "$node")
  node_running "$node" || { log "kafka node $node not running"; return 0; }
  pid=$(cat "$dir/kafka.pid")
  log "stopping kafka node $node (pid $pid)"
  kill -TERM "$pid"  # controlled shutdown
  for _ in $(seq 1 300); do
    alive "$pid" || { rm -f "$dir/kafka.pid"; return 0; }
    sleep 0.1
  done
  log "kafka node $node did not stop within 30 s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$dir/kafka.pid"
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
    rm -rf "$PG_DIR/data" "$KAFKA_DIR/data" "$KAFKA_DIR"/node* "$KAFKA_DIR/brokers" \
      "$KAFKA_DIR/cluster-id" "$STATE/logs"
    ;;
  status)
    if pg_running; then echo "postgresql: running on 127.0.0.1:$PG_PORT"; else echo "postgresql: stopped"; fi
    for n in $(nodes); do
      if node_running "$n"; then echo "kafka node $n: running on 127.0.0.1:$(node_port "$n")"
      else echo "kafka node $n: stopped"; fi
    done
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
