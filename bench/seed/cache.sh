#!/usr/bin/env bash
# bench/seed/cache.sh: a seeded-scale Warden database (warden-seed), from
# the cache when there is one.
#
# Usage:
#   bench/seed/cache.sh BACKEND PLAN SEED TARGET
#     BACKEND  sqlite | postgres
#     PLAN     full | N            (N users, the full plan's ratios)
#     SEED     an unsigned integer (every random choice of the generator)
#     TARGET   sqlite:   the database file to write (replaced, with its -wal/-shm)
#              postgres: the URL of the database to write, e.g.
#                        postgres://postgres@127.0.0.1:55642/warden_scale
#                        (dropped and created again through the server's
#                        `postgres` database, or PG_ADMIN_URL when set)
#
# Prints the generator's JSON summary on stdout (the password, the heavy
# users and their API keys, the administrators, rows and seconds per table:
# the summary of the seeding that made the cached copy); notes go to stderr.
# Exit status 0 when TARGET holds the seeded database.
#
# Environment:
#   BENCH_CACHE_DIR   where copies are kept (/tmp/warden-bench-cache)
#   WARDEN_SEED_NOW   the instant the data is "now" for, RFC 3339
#                     (default: today 00:00:00Z, so a copy serves one day;
#                     pin it to reuse a copy for longer)
#   WARDEN_SEED_BIN   the warden-seed binary (default: cargo build --release
#                     -p warden-seed, in $CARGO_TARGET_DIR or ./target)
#   PG_ADMIN_URL      postgres: a database on the same server to run
#                     DROP/CREATE DATABASE from
#
# The cache key is the backend, the plan, the seed, the date of "now" and a
# hash of migration/src/* and bench/seed/src/* (a new migration or a changed
# generator makes a new copy):
#   sqlite:   $BENCH_CACHE_DIR/seed-sqlite-<key>.db     (a copy of the file)
#   postgres: $BENCH_CACHE_DIR/seed-postgres-<key>.dump (pg_dump -Fc, restored
#             with pg_restore -j2, then VACUUM (ANALYZE))
#   and <same name>.json, the summary.
set -euo pipefail

say() { echo "cache.sh: $*" >&2; }
die() { say "$*"; exit 1; }

[ $# -eq 4 ] || die "usage: $0 sqlite|postgres full|USERS SEED TARGET"
BACKEND=$1 PLAN=$2 SEED=$3 TARGET=$4
case "$BACKEND" in sqlite | postgres) ;; *) die "backend must be sqlite or postgres" ;; esac
case "$PLAN" in full) PLAN_ARGS=(--full) ;; *[!0-9]* | '') die "plan must be full or a number of users" ;; *) PLAN_ARGS=(--users "$PLAN") ;; esac
case "$SEED" in *[!0-9]* | '') die "seed must be an unsigned integer" ;; esac

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE_DIR="${BENCH_CACHE_DIR:-/tmp/warden-bench-cache}"
NOW="${WARDEN_SEED_NOW:-$(date -u +%Y-%m-%dT00:00:00Z)}"
SCHEMA=$(cd "$ROOT" && cat migration/src/*.rs bench/seed/src/*.rs bench/seed/Cargo.toml | sha256sum | cut -c1-12)
KEY="${PLAN}-s${SEED}-$(echo "$NOW" | tr -cd '0-9')-${SCHEMA}"
mkdir -p "$CACHE_DIR"

seed_bin() {
  if [ -n "${WARDEN_SEED_BIN:-}" ]; then
    echo "$WARDEN_SEED_BIN"
    return
  fi
  say "building warden-seed (release)"
  (cd "$ROOT" && nice -n 10 cargo build --release -q -p warden-seed >&2)
  echo "${CARGO_TARGET_DIR:-$ROOT/target}/release/warden-seed"
}

if [ "$BACKEND" = sqlite ]; then
  COPY="$CACHE_DIR/seed-sqlite-$KEY.db"
  rm -f "$TARGET" "$TARGET-wal" "$TARGET-shm"
  if [ -s "$COPY" ] && [ -s "$COPY.json" ]; then
    say "cache hit: $COPY"
    cp "$COPY" "$TARGET"
  else
    say "cache miss: seeding $TARGET (plan $PLAN, seed $SEED, now $NOW)"
    bin=$(seed_bin)
    "$bin" --url "sqlite://$TARGET?mode=rwc" "${PLAN_ARGS[@]}" --seed "$SEED" --now "$NOW" >"$COPY.json.tmp"
    # The generator's pool is closed: the WAL is checkpointed into the file.
    [ ! -s "$TARGET-wal" ] || die "$TARGET-wal is left over: the copy would be incomplete"
    cp "$TARGET" "$COPY.tmp"
    mv "$COPY.tmp" "$COPY"
    mv "$COPY.json.tmp" "$COPY.json"
  fi
  cat "$COPY.json"
  exit 0
fi

# Postgres.
DUMP="$CACHE_DIR/seed-postgres-$KEY.dump"
DB=${TARGET##*/}
DB=${DB%%\?*}
ADMIN="${PG_ADMIN_URL:-${TARGET%/*}/postgres}"
case "$DB" in *[!a-zA-Z0-9_]* | '') die "the database name must be letters, digits and _: $DB" ;; esac
psql -X -q -v ON_ERROR_STOP=1 "$ADMIN" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
if [ -s "$DUMP" ] && [ -s "$DUMP.json" ]; then
  say "cache hit: restoring $DUMP"
  pg_restore -j 2 --no-owner -d "$TARGET" "$DUMP"
  psql -X -q -v ON_ERROR_STOP=1 "$TARGET" -c "VACUUM (ANALYZE)"
else
  say "cache miss: seeding $DB (plan $PLAN, seed $SEED, now $NOW)"
  bin=$(seed_bin)
  "$bin" --url "$TARGET" "${PLAN_ARGS[@]}" --seed "$SEED" --now "$NOW" >"$DUMP.json.tmp"
  say "dumping to $DUMP"
  pg_dump -Fc -Z1 -f "$DUMP.tmp" "$TARGET"
  mv "$DUMP.tmp" "$DUMP"
  mv "$DUMP.json.tmp" "$DUMP.json"
fi
cat "$DUMP.json"
