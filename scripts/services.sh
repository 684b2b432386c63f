#!/usr/bin/env bash
# Starts, stops and reports the local Kafka (KRaft, single node) and
# PostgreSQL that tests, the demo and CI use, on loopback:
#   scripts/services.sh up|down|status|stop-kafka|start-kafka|stop-postgres|start-postgres
# Kafka: data in .run/kafka/data, log in .run/kafka/server.log, 127.0.0.1:9092.
# Postgres: Debian's cluster on 127.0.0.1:5432, role `bertstream`, databases
# `bertstream` and `bertstream_test`.
# If KAFKA_BROKERS or DATABASE_URL already point somewhere else, that service is
# yours: the script starts and stops nothing for it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/versions.sh

LOCAL_KAFKA=127.0.0.1:9092
LOCAL_PG_HOST=127.0.0.1 LOCAL_PG_PORT=5432
kafka_dir="$root/.run/kafka"
kafka_libs="$root/.cache/kafka/$KAFKA_VERSION/libs"

log() { printf '\033[1m[services]\033[0m %s\n' "$*" >&2; }
sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }

kafka_is_ours() { [ -z "${KAFKA_BROKERS:-}" ] || [ "$KAFKA_BROKERS" = "$LOCAL_KAFKA" ]; }
pg_is_ours() { [ -z "${DATABASE_URL:-}" ] || [[ "$DATABASE_URL" == *"@$LOCAL_PG_HOST:$LOCAL_PG_PORT/"* ]]; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_for() { # seconds, description, command...
  local secs=$1 what=$2; shift 2
  for _ in $(seq $((secs * 4))); do "$@" && return 0; sleep 0.25; done
  log "$what did not become ready in ${secs}s"; return 1
}

kafka_java() { java -Xms256m -Xmx1g -Dlog4j2.configurationFile="$kafka_dir/log4j2.properties" -cp "$kafka_libs/*" "$@"; }

kafka_ready() {
  # A metadata request answered by the broker: the port alone opens before the
  # controller has elected itself.
  port_open 127.0.0.1 9092 && kafka_java org.apache.kafka.tools.TopicCommand \
    --bootstrap-server "$LOCAL_KAFKA" --list >/dev/null 2>&1
}

kafka_up() {
  if ! kafka_is_ours; then log "Kafka: using KAFKA_BROKERS=$KAFKA_BROKERS"; return; fi
  [ -d "$kafka_libs" ] || { log "Kafka jars missing: run scripts/bootstrap.sh"; exit 1; }
  if port_open 127.0.0.1 9092; then log "Kafka: already up on $LOCAL_KAFKA"; return; fi
  mkdir -p "$kafka_dir/data"
  cat > "$kafka_dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:9093
listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093
advertised.listeners=PLAINTEXT://127.0.0.1:9092
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$kafka_dir/data
num.partitions=4
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
message.max.bytes=16777216
log.retention.hours=24
PROPS
  cat > "$kafka_dir/log4j2.properties" <<PROPS
appender.file.type=File
appender.file.name=file
appender.file.fileName=$kafka_dir/server.log
appender.file.layout.type=PatternLayout
appender.file.layout.pattern=[%d] %p %m (%c)%n
rootLogger.level=INFO
rootLogger.appenderRef.file.ref=file
logger.kafka.name=kafka
logger.kafka.level=WARN
logger.apache.name=org.apache.kafka
logger.apache.level=WARN
PROPS
  if [ ! -f "$kafka_dir/data/meta.properties" ]; then
    local cluster_id
    cluster_id=$(kafka_java kafka.tools.StorageTool random-uuid)
    kafka_java kafka.tools.StorageTool format -t "$cluster_id" -c "$kafka_dir/server.properties" --standalone >/dev/null
  fi
  log "Kafka $KAFKA_VERSION: starting on $LOCAL_KAFKA (log: .run/kafka/server.log)"
  nohup java -Xms512m -Xmx1g -Dlog4j2.configurationFile="$kafka_dir/log4j2.properties" \
    -cp "$kafka_libs/*" kafka.Kafka "$kafka_dir/server.properties" >"$kafka_dir/stdout.log" 2>&1 &
  echo $! >"$kafka_dir/pid"
  wait_for 90 Kafka kafka_ready
  log "Kafka: ready"
}

kafka_down() {
  kafka_is_ours || return 0
  [ -f "$kafka_dir/pid" ] || return 0
  local pid; pid=$(cat "$kafka_dir/pid")
  if kill -0 "$pid" 2>/dev/null; then
    log "Kafka: stopping"
    kill "$pid"
    for _ in $(seq 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$kafka_dir/pid"
}

pg_cluster() { pg_lsclusters -h 2>/dev/null | awk '$3 == 5432 {print $1, $2; exit}'; }

pg_up() {
  if ! pg_is_ours; then log "Postgres: using DATABASE_URL from the environment"; return; fi
  command -v pg_lsclusters >/dev/null || { log "postgresql missing: run scripts/bootstrap.sh"; exit 1; }
  local cluster; cluster=$(pg_cluster)
  if [ -z "$cluster" ]; then
    log "Postgres: creating a cluster on port 5432"
    local version; version=$(ls /usr/lib/postgresql | sort -n | tail -1)
    sudo_ pg_createcluster -p 5432 "$version" main >/dev/null
    cluster="$version main"
  fi
  # Many clients in the tests at once; fsync is kept (durability is tested).
  if ! pg_lsclusters -h | awk '$3 == 5432' | grep -q online; then
    log "Postgres: starting cluster $cluster"
    sudo_ pg_ctlcluster $cluster start -- -o "-c max_connections=300 -c listen_addresses=127.0.0.1"
  fi
  wait_for 30 Postgres pg_isready -q -h 127.0.0.1 -p 5432
  as_postgres psql -q -p 5432 -d postgres -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
SELECT 'CREATE ROLE bertstream LOGIN SUPERUSER PASSWORD ''bertstream'''
  WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bertstream') \gexec
SELECT 'CREATE DATABASE bertstream OWNER bertstream'
  WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'bertstream') \gexec
SELECT 'CREATE DATABASE bertstream_test OWNER bertstream'
  WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'bertstream_test') \gexec
SQL
  log "Postgres: ready (databases bertstream, bertstream_test)"
}

pg_down() {
  pg_is_ours || return 0
  local cluster; cluster=$(pg_cluster)
  [ -n "$cluster" ] || return 0
  if pg_lsclusters -h | awk '$3 == 5432' | grep -q online; then
    log "Postgres: stopping cluster $cluster"
    sudo_ pg_ctlcluster $cluster stop -m fast
  fi
}

status() {
  if kafka_is_ours; then
    if port_open 127.0.0.1 9092; then echo "kafka: up ($LOCAL_KAFKA)"; else echo "kafka: down"; fi
  else echo "kafka: external ($KAFKA_BROKERS)"; fi
  if pg_is_ours; then
    if port_open "$LOCAL_PG_HOST" "$LOCAL_PG_PORT"; then echo "postgres: up ($LOCAL_PG_HOST:$LOCAL_PG_PORT)"; else echo "postgres: down"; fi
  else echo "postgres: external"; fi
}

case "${1:-}" in
  up) pg_up; kafka_up ;;
  down) kafka_down; pg_down ;;
  status) status ;;
  # For the broker-restart test and the soak: one service alone, stopped and started again with its data.
  stop-kafka) kafka_down ;;
  start-kafka) kafka_up ;;
  stop-postgres) pg_down ;;
  start-postgres) pg_up ;;
  *) echo "usage: $0 up|down|status|stop-kafka|start-kafka|stop-postgres|start-postgres" >&2; exit 2 ;;
esac
