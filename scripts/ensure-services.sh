#!/usr/bin/env bash
# Make sure PostgreSQL and Redis (and, with --rabbitmq, RabbitMQ) answer on loopback, starting
# or installing them when this machine lacks them. Prints the CR_TEST_PG URL to use.
set -euo pipefail

as_root() { [ "$(id -u)" -eq 0 ]; }
install_pkgs() {
  if as_root && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "$@" >/dev/null
  else
    echo "please install: $*  (e.g. sudo apt-get install $*)" >&2
    exit 1
  fi
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
  for _ in $(seq 1 60); do port_open "$1" && return 0; sleep 0.5; done
  echo "$2 did not start on 127.0.0.1:$1" >&2; exit 1
}

# --- PostgreSQL -------------------------------------------------------------------------------
if ! port_open 5432; then
  command -v pg_ctlcluster >/dev/null 2>&1 || install_pkgs postgresql
  version=$(ls /etc/postgresql | sort -V | tail -n1)
  echo "starting PostgreSQL $version ..." >&2
  pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
  wait_port 5432 PostgreSQL
fi
pg_url="${CR_TEST_PG:-postgresql://postgres@127.0.0.1:5432/test}"
if ! psql "$pg_url" -qAtc "select 1" >/dev/null 2>&1; then
  # A fresh Debian PostgreSQL wants a password on TCP: make a test role that has one.
  if as_root && command -v runuser >/dev/null 2>&1; then
    runuser -u postgres -- psql -qAtc "DO \$\$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'consent_replay_test') THEN
        CREATE ROLE consent_replay_test LOGIN CREATEDB PASSWORD 'consent_replay_test';
      END IF; END \$\$;" >&2
    runuser -u postgres -- psql -qAtc "SELECT 1 FROM pg_database WHERE datname='consent_replay_test'" \
      | grep -q 1 || runuser -u postgres -- createdb -O consent_replay_test consent_replay_test >&2
    pg_url="postgresql://consent_replay_test:consent_replay_test@127.0.0.1:5432/consent_replay_test"
  fi
  psql "$pg_url" -qAtc "select 1" >/dev/null || { echo "cannot connect to PostgreSQL at $pg_url" >&2; exit 1; }
fi

# --- Redis ------------------------------------------------------------------------------------
if ! port_open 6379; then
  command -v redis-server >/dev/null 2>&1 || install_pkgs redis-server
  echo "starting Redis ..." >&2
  mkdir -p /tmp/consent-replay-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp/consent-replay-redis --logfile /tmp/consent-replay-redis/redis.log >&2
  wait_port 6379 Redis
fi

# --- RabbitMQ (only for the scale-out proof) -----------------------------------------------------
if [ "${1:-}" = "--rabbitmq" ] && ! port_open 5672; then
  command -v rabbitmq-server >/dev/null 2>&1 || install_pkgs rabbitmq-server
  echo "starting RabbitMQ ..." >&2
  rabbitmq-server -detached >&2 || true
  wait_port 5672 RabbitMQ
fi

echo "$pg_url"
