# bench/scale.sh: the rows of `bench/run --scale` (issue #23, item 2),
# sourced by bench/run after its preparation (functions, binaries, WORK).
#
# For each backend (SQLite; Postgres when one is reachable, as for W3), the
# same operations are measured on an empty database and on a seeded one
# (bench/seed through bench/seed/cache.sh: the full plan is 1M users, 3M
# sessions, 10M refresh tokens, 10M audit events and the newer tables), in
# one run, Warden on core 0 and the load on core 1 (the first layout):
#
#   S-me          `me` (W1's request), closed loop, 64 connections
#   S-refresh     refresh rotation (W3's), closed loop, 16 connections
#   S-login       login at bcrypt cost 4 (the database is what is measured)
#   S-register    register at cost 4
#   S-sessions    `sessions` of 64 ordinary accounts
#   S-audit-first `auditLog(first: 50)` of an account with many events
#   S-audit-deep  the same, 100,000 events deep by cursor (empty: page 2;
#                 a smaller plan: as deep as its heavy users' events go)
#   S-users       `users(first: 50, filter: {search: "kwame"})` as an admin
#   S-apikey      `me` with an API key
#   S-cleanup     the server's own cleanup pass over the plan's expired
#                 sessions: its duration, and `me`'s p99 at 70% of S-me's
#                 seeded rate while it runs (5 s windows; the worst counts)
#
# Each row's value is the seeded figure and its limit the empty one: the
# goal is throughput >= 0.8x and p99 <= 1.2x the empty database's (p99
# rows under 1 ms pass on the absolute floor: their ratio is timer noise),
# and the cleanup never takes `me`'s p99 over 10 ms. Each row carries the
# plans of the statements it relies on (bench/scale_plans.py: EXPLAIN QUERY
# PLAN on SQLite, EXPLAIN ANALYZE on Postgres), in its note when a plan
# scans a whole table, and always in results.json's detail.
#
# The seeded accounts all have the password `seeded-scale password`; the
# heavy users (`seed-heavy-N@seed.example.com`, 150,000 audit events each
# in the full plan) and their API keys come from the generator's summary.
# On the empty database the same shapes are made over GraphQL: 64
# accounts, one with 110 audit events, 60 accounts named `kwame…` for the
# search, an admin (`warden admin create`), five API keys.

SCALE_SEED="${BENCH_SCALE_SEED:-1}"
SCALE_CONNS=64
SCALE_WCONNS=16     # writes (refresh, login, register): more only queue on SQLite's one writer
SCALE_SEARCH=kwame
SEEDED_PASSWORD="seeded-scale password"

# scale_sql URL SQL: one value per line (SQLite through python3, Postgres through psql).
scale_sql() {
  case "$1" in
    sqlite:*)
      python3 - "$1" "$2" <<'PY'
import sqlite3, sys, uuid
url, sql = sys.argv[1:]
path = url.split("sqlite://", 1)[-1].split("?", 1)[0]
con = sqlite3.connect(path, timeout=60)
# Warden keeps UUIDs as 16-byte blobs on SQLite: printed as Postgres prints them.
show = lambda v: "" if v is None else str(uuid.UUID(bytes=v)) if isinstance(v, bytes) and len(v) == 16 else str(v)
for row in con.execute(sql):
    print("\t".join(show(v) for v in row))
PY
      ;;
    *) timeout 300 psql -X -At -F $'\t' -v ON_ERROR_STOP=1 "$1" -c "$2" ;;
  esac
}

# scale_plans OP URL [name=value...]: the plans of OP's statements (one JSON line, or null).
scale_plans() {
  local op="$1" url="$2"
  shift 2
  local params=() p
  for p in "$@"; do params+=(--param "$p"); done
  timeout 600 python3 "$BENCH/scale_plans.py" --url "$url" --op "$op" "${params[@]+"${params[@]}"}" \
    2>>"$WORK/scale-plans.log" || echo null
}

# scale_body FILE QUERY [VARIABLES_JSON]: a GraphQL request body for gql.lua.
scale_body() {
  python3 -c 'import json, sys; print(json.dumps({"query": sys.argv[1], "variables": json.loads(sys.argv[2])}))' \
    "$2" "${3:-{\}}" >"$1"
}

# scale_prepare BACKEND STATE: makes the database, starts Warden on it and
# leaves what the rows need in $WORK/scale-$BACKEND-$STATE.* ; sets S_URL,
# S_PID, S_PASSWORD, S_NOTE.
scale_prepare() {
  local backend="$1" state="$2" pre="$WORK/scale-$1-$2" t0=$EPOCHREALTIME
  if [ "$backend" = sqlite ]; then
    S_URL="sqlite://$pre.db?mode=rwc"
  else
    S_URL="${PG_ADMIN_URL%/*}/warden_scale_${state}_$$"
    PG_DBS+=("warden_scale_${state}_$$")
  fi
  if [ "$state" = seeded ]; then
    local target="$pre.db"
    [ "$backend" = postgres ] && target="$S_URL"
    WARDEN_SEED_BIN="${SEED_BIN:-${WARDEN_SEED_BIN:-}}" PG_ADMIN_URL="$PG_ADMIN_URL" BENCH_CACHE_DIR="$CACHE_DIR" fg timeout 7200 "$BENCH/seed/cache.sh" "$backend" "$SCALE_PLAN" "$SCALE_SEED" "$target" \
      >"$pre.summary.json" 2>>"$WORK/scale-seed.log" || die "seeding failed (see target/bench/logs/scale-seed.log)"
    local how
    how=$(grep -o 'cache hit\|cache miss' "$WORK/scale-seed.log" | tail -n 1 || true)
    S_NOTE="plan $SCALE_PLAN, seed $SCALE_SEED: $([ "$how" = "cache hit" ] && echo "restored from the cache" || echo "seeded now") in $(calc "round($EPOCHREALTIME - $t0)") s"
    S_PASSWORD="$SEEDED_PASSWORD"
  else
    if [ "$backend" = postgres ]; then
      timeout 60 psql -X -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS warden_scale_${state}_$$" -c "CREATE DATABASE warden_scale_${state}_$$" >/dev/null
    else
      rm -f "$pre.db"
    fi
    S_NOTE="empty"
    S_PASSWORD="$PASSWORD"
  fi
  warden_cli "$S_URL" migrate >>"$WORK/scale-migrate.log" 2>&1 || die "warden migrate ($backend, $state) failed"

  if [ "$state" = empty ]; then
    # The shapes of the seeded data, made the way a client makes them.
    warden_cli "$S_URL" admin create "scale-admin@bench.example.com" <<<"$PASSWORD" >>"$WORK/scale-migrate.log" 2>&1 ||
      die "warden admin create failed"
    start_warden "scale-$backend-$state-setup" "" "$PORT" "$S_URL" WARDEN_BCRYPT_COST=4 WARDEN_LOCKOUT_THRESHOLD=1000000
    tools register --port "$PORT" --n 64 --prefix "scale" --password "$PASSWORD" --out "$pre.reg.tsv"
    cut -f1 "$pre.reg.tsv" >"$pre.emails"
    tools register --port "$PORT" --n 60 --prefix "$SCALE_SEARCH" --password "$PASSWORD" --out "$pre.search.tsv"
    # The account with many events: 110 logins (a page of 50, and a second).
    head -n 1 "$pre.emails" >"$pre.heavy"
    tools logins --port "$PORT" --emails "$pre.heavy" --password "$PASSWORD" --times 110 --out "$pre.heavy.tsv"
    tail -n 5 "$pre.reg.tsv" | cut -f2 >"$pre.keyowners"
    tools apikeys --port "$PORT" --tokens "$pre.keyowners" --scopes USER --name "bench scale" --out "$pre.keys"
    stop_pid "$SERVER_PID"
  else
    # 64 ordinary accounts spread over the table (id order), and the
    # heavy users' keys from the summary.
    local greatest=greatest
    [ "$backend" = sqlite ] && greatest=max
    scale_sql "$S_URL" "SELECT email FROM (SELECT email, row_number() OVER (ORDER BY id) AS n FROM users
      WHERE role = 'USER' AND disabled_at IS NULL AND mfa_enabled_at IS NULL AND email NOT LIKE 'seed-%') AS t
      WHERE n % $greatest(1, (SELECT count(*) FROM users) / 64) = 0 LIMIT 64" >"$pre.emails"
    [ "$(grep -c . "$pre.emails")" -ge 16 ] || die "the seeded database has too few ordinary accounts"
    echo "seed-heavy-1@seed.example.com" >"$pre.heavy"
    python3 -c 'import json, sys; print("\n".join(h["api_key"] for h in json.load(open(sys.argv[1]))["heavy_users"]))' \
      "$pre.summary.json" >"$pre.keys" 2>>"$WORK/scale-seed.log" || die "no API keys in the seed's summary"
  fi
  start_warden "scale-$backend-$state" "$SRV_CPU" "$PORT" "$S_URL" WARDEN_BCRYPT_COST=4 WARDEN_LOCKOUT_THRESHOLD=1000000
  S_PID="$SERVER_PID"
  tools logins --port "$PORT" --emails "$pre.emails" --password "$S_PASSWORD" --out "$pre.me.tsv"
  cut -f2 "$pre.me.tsv" >"$pre.tokens"
  cut -f3 "$pre.me.tsv" >"$pre.pool"
  tools logins --port "$PORT" --emails "$pre.heavy" --password "$S_PASSWORD" --out "$pre.heavy.me.tsv"
  cut -f2 "$pre.heavy.me.tsv" >"$pre.heavy.tokens"
  if [ "$state" = empty ]; then
    echo "scale-admin@bench.example.com" >"$pre.admin"
  else
    echo "seed-admin-1@seed.example.com" >"$pre.admin"
  fi
  tools logins --port "$PORT" --emails "$pre.admin" --password "$S_PASSWORD" --out "$pre.admin.tsv"
  cut -f2 "$pre.admin.tsv" >"$pre.admin.tokens"
  # The deep page's cursor: base64url("audit:ID") of the account's event
  # 100,000 from the newest (empty: its 50th, so the page is the second).
  local heavy_id depth=100000 before
  heavy_id=$(scale_sql "$S_URL" "SELECT id FROM users WHERE email = '$(cat "$pre.heavy")'")
  if [ "$state" = empty ]; then
    depth=50
  else
    # A smaller plan's heavy users have fewer events: as deep as it goes.
    depth=$(python3 -c 'import json, sys; print(min(100000, json.load(open(sys.argv[1]))["heavy_users"][0]["audit_events"] - 50))' "$pre.summary.json")
  fi
  echo "$depth" >"$pre.depth"
  before=$(scale_sql "$S_URL" "SELECT a.id FROM audit_events a JOIN users u ON u.id = a.user_id
    WHERE u.email = '$(cat "$pre.heavy")' ORDER BY a.id DESC LIMIT 1 OFFSET $((depth - 1))")
  [ -n "$before" ] || die "the account $(cat "$pre.heavy") has fewer than $depth audit events"
  echo "$heavy_id" >"$pre.heavy.id"
  echo "$before" >"$pre.before"
  S_NOTE="$S_NOTE; prepared in $(calc "round($EPOCHREALTIME - $t0)") s"
}

# scale_measure BACKEND STATE: every row's figures into $WORK/scale-B-S-ROW.json.
scale_measure() {
  local backend="$1" state="$2" pre="$WORK/scale-$1-$2" m
  local cursor
  cursor=$(python3 -c 'import base64, sys; print(base64.urlsafe_b64encode(f"audit:{sys.argv[1]}".encode()).decode().rstrip("="))' "$(cat "$pre.before")")
  scale_body "$pre.b-sessions" "{ sessions { id createdAt lastUsedAt ip userAgent current } }"
  scale_body "$pre.b-audit" "query(\$n: Int) { auditLog(first: \$n) { edges { cursor node { id at kind severity ip } } pageInfo { hasNextPage endCursor } } }" '{"n": 50}'
  scale_body "$pre.b-deep" "query(\$n: Int, \$a: String) { auditLog(first: \$n, after: \$a) { edges { cursor node { id at kind severity ip } } pageInfo { hasNextPage endCursor } } }" "{\"n\": 50, \"a\": \"$cursor\"}"
  scale_body "$pre.b-users" "query(\$s: String!, \$n: Int!) { users(first: \$n, filter: {search: \$s}) { edges { cursor node { id email username role } } pageInfo { hasNextPage endCursor } } }" "{\"s\": \"$SCALE_SEARCH\", \"n\": 50}"

  note "S ($backend, $state): me"
  wrk_measure "scale-$backend-$state-me" me.lua "$SCALE_CONNS" "$URL" BENCH_TOKENS="$pre.tokens" >"$pre.r-me.json"
  note "S ($backend, $state): refresh"
  # Each run can drop a chain per connection (a request in flight when wrk
  # stops loses its successor): the pool is topped up after every run, as
  # W3's is, or the last runs send "pool-empty" tokens.
  # An empty or missing successor file (every chain dropped, or wrk killed
  # before done()) leaves no usable token: the pool starts again from the
  # top-up, never from tokens already rotated.
  AFTER_RUN='if [ -e "$WORK/scale.pool.next" ]; then mv -f "$WORK/scale.pool.next" "'"$pre.pool"'"; else : >"'"$pre.pool"'"; fi; top_up_pool "'"$pre.pool"'" $((3 * SCALE_WCONNS)) "$PORT"'
  wrk_measure "scale-$backend-$state-refresh" refresh.lua "$SCALE_WCONNS" "$URL" BENCH_TOKENS="$pre.pool" BENCH_TOKENS_OUT="$WORK/scale.pool.next" >"$pre.r-refresh.json"
  AFTER_RUN=""
  note "S ($backend, $state): login at cost 4"
  wrk_measure "scale-$backend-$state-login" login.lua "$SCALE_WCONNS" "$URL" BENCH_LOGINS="$pre.emails" BENCH_PASSWORD="$S_PASSWORD" >"$pre.r-login.json"
  note "S ($backend, $state): register at cost 4"
  wrk_measure "scale-$backend-$state-register" register.lua "$SCALE_WCONNS" "$URL" BENCH_NONCE="s$backend$state$$" BENCH_PASSWORD="$PASSWORD" >"$pre.r-register.json"
  note "S ($backend, $state): sessions"
  wrk_measure "scale-$backend-$state-sessions" gql.lua "$SCALE_CONNS" "$URL" BENCH_TOKENS="$pre.tokens" BENCH_BODY="$pre.b-sessions" >"$pre.r-sessions.json"
  note "S ($backend, $state): auditLog, first page and deep"
  wrk_measure "scale-$backend-$state-audit-first" gql.lua "$SCALE_CONNS" "$URL" BENCH_TOKENS="$pre.heavy.tokens" BENCH_BODY="$pre.b-audit" >"$pre.r-audit-first.json"
  wrk_measure "scale-$backend-$state-audit-deep" gql.lua "$SCALE_CONNS" "$URL" BENCH_TOKENS="$pre.heavy.tokens" BENCH_BODY="$pre.b-deep" >"$pre.r-audit-deep.json"
  note "S ($backend, $state): users(search:) as an admin"
  wrk_measure "scale-$backend-$state-users" gql.lua "$SCALE_CONNS" "$URL" BENCH_TOKENS="$pre.admin.tokens" BENCH_BODY="$pre.b-users" >"$pre.r-users.json"
  note "S ($backend, $state): me with an API key"
  wrk_measure "scale-$backend-$state-apikey" me.lua "$SCALE_CONNS" "$URL" BENCH_TOKENS="$pre.keys" >"$pre.r-apikey.json"

  # The plans, on the database as the rows found it.
  local sid uid email rhash key
  email=$(head -n 1 "$pre.emails")
  uid=$(scale_sql "$S_URL" "SELECT id FROM users WHERE email = '$email'")
  sid=$(scale_sql "$S_URL" "SELECT s.id FROM sessions s JOIN users u ON u.id = s.user_id
    WHERE u.email = '$email' ORDER BY s.created_at DESC LIMIT 1")
  key=$(head -n 1 "$pre.keys")
  local common=("user_id=$uid" "session_id=$sid" "email=$email" "heavy_user_id=$(cat "$pre.heavy.id")"
    "audit_before=$(cat "$pre.before")" "search=$SCALE_SEARCH" "api_key=$key")
  local op
  for op in me refresh login register sessions audit_first audit_deep users_search api_key_me cleanup; do
    scale_plans "$op" "$S_URL" "${common[@]}" >"$pre.p-$op.json"
  done
}

# scale_cleanup BACKEND: the seeded database's cleanup pass, with `me` paced
# at 70% of S-me's seeded rate in 5 s windows until the pass has logged.
scale_cleanup() {
  local backend="$1" pre="$WORK/scale-$1-seeded" rate interval=5
  rate=$(calc "round(0.7 * $(jget "$(cat "$pre.r-me.json")" rps))")
  local log="$WORK/scale-$backend-cleanup.log"
  : >"$log"
  # A fresh server whose first pass starts $interval s after it is ready.
  start_warden "scale-$backend-cleanup" "$SRV_CPU" "$PORT" "$S_URL" WARDEN_BCRYPT_COST=4 \
    WARDEN_LOCKOUT_THRESHOLD=1000000 WARDEN_CLEANUP_INTERVAL="${interval}s" RUST_LOG="warn,warden::cleanup=info"
  local pid="$SERVER_PID" started=$EPOCHREALTIME w=0 files=() worst=0 p
  cp "$WORK/scale-$backend-cleanup.log" "$log" 2>/dev/null || true
  while :; do
    w=$((w + 1))
    wrk_once "$WORK/scale-$backend-cleanup-w$w" me.lua "$SCALE_CONNS" 5 "$URL" BENCH_TOKENS="$pre.tokens" BENCH_RATE="$rate"
    files+=("$WORK/scale-$backend-cleanup-w$w.json")
    p=$(jget "$(cat "$WORK/scale-$backend-cleanup-w$w.json")" p99_us)
    worst=$(calc "max($worst, ${p:-0})")
    grep -q '"cleanup pass"' "$WORK/scale-$backend-cleanup.log" && break
    [ "$w" -ge 720 ] && break   # an hour
  done
  local ended passes
  ended=$(calc "round($EPOCHREALTIME - $started - $interval, 1)")
  passes=$(grep '"cleanup pass"' "$WORK/scale-$backend-cleanup.log" | head -n 1)
  stop_pid "$pid"
  local m
  m=$(tools median "${files[@]}")
  echo "{\"windows\": $w, \"worst_p99_us\": $worst, \"pass_s_at_most\": $ended, \"rate\": $rate, \"median\": $m}" >"$pre.r-cleanup.json"
  echo "$passes" >"$pre.r-cleanup.log"
}

# scale_rows BACKEND: the comparison rows (value seeded, limit empty).
scale_rows() {
  local backend="$1" e="$WORK/scale-$1-empty" s="$WORK/scale-$1-seeded" name op plans flag em sm
  local db_what="SQLite"
  [ "$backend" = postgres ] && db_what="Postgres"
  for pair in me:me refresh:refresh login:login register:register sessions:sessions audit-first:audit_first \
    audit-deep:audit_deep users:users_search apikey:api_key_me; do
    name="${pair%%:*}" op="${pair#*:}"
    em=$(cat "$e.r-$name.json") sm=$(cat "$s.r-$name.json")
    plans=$(cat "$s.p-$op.json")
    flag=$(jget "$plans" full_scan)
    local plan_note="plans (seeded): $(jget "$plans" summary)"
    [ "$flag" = True ] || [ "$flag" = true ] && plan_note="FULL SCAN: $plan_note"
    local detail="{\"seeded\": $sm, \"empty\": $em, \"plans_seeded\": $plans, \"plans_empty\": $(cat "$e.p-$op.json")}"
    wrk_row "S-$name-$backend" "$LAYOUT" "$sm" rps req/s --what "$name at scale, $db_what: throughput" \
      --limit "$(jget "$em" rps)" --limit-id "empty database" --goal ">= 0.8 x empty" --min-ratio 0.8 \
      --note "$plan_note" --detail "$detail"
    wrk_row "S-$name-$backend-p99" "$LAYOUT" "$sm" p99_us µs --what "$name at scale, $db_what: p99" \
      --limit "$(jget "$em" p99_us)" --limit-id "empty database" --goal "p99 <= 1.2 x empty" --max-ratio 1.2 --max-value 1000 \
      --note "p50 $(jget "$sm" p50_us) µs (empty $(jget "$em" p50_us) µs)"
  done
  if [ -s "$s.r-cleanup.json" ]; then
    local c
    c=$(cat "$s.r-cleanup.json")
    row --id "S-cleanup-$backend" --layout "$LAYOUT" --value "$(jget "$c" worst_p99_us)" --unit µs \
      --what "me p99 (worst 5 s window) during the cleanup pass, $db_what" --goal "p99 <= 10 ms" --max-value 10000 \
      --note "offered $(jget "$c" rate)/s; the pass took at most $(jget "$c" pass_s_at_most) s over $(jget "$c" windows) windows; $(cut -c1-300 "$s.r-cleanup.log"); plans: $(jget "$(cat "$s.p-cleanup.json")" summary)" \
      --detail "{\"cleanup\": $c, \"plans\": $(cat "$s.p-cleanup.json")}"
  fi
}

scale_backend() {
  local backend="$1"
  URL="http://127.0.0.1:$PORT/graphql"
  for state in empty seeded; do
    say "scale: $backend, $state database"
    scale_prepare "$backend" "$state"
    note "$S_NOTE"
    scale_measure "$backend" "$state"
    stop_pid "$S_PID"
    if [ "$state" = seeded ] && [ "${BENCH_SCALE_CLEANUP:-1}" != 0 ]; then scale_cleanup "$backend"; fi
    echo "$S_NOTE" >"$WORK/scale-$backend-$state.note"
  done
  scale_rows "$backend"
  row --id "S-data-$backend" --layout "$LAYOUT" --kind limit --what "the seeded $backend database" \
    --note "$(cat "$WORK/scale-$backend-seeded.note")"
}

set_layout "$FIRST_LAYOUT"
# BENCH_SCALE_BACKENDS: "sqlite postgres" (the default), or one of them.
SCALE_BACKENDS="${BENCH_SCALE_BACKENDS:-sqlite postgres}"
case "${BENCH_SCALE_CLEANUP:-1}" in 0 | 1) ;; *) die "BENCH_SCALE_CLEANUP: '$BENCH_SCALE_CLEANUP' is neither 0 nor 1" ;; esac
for b in $SCALE_BACKENDS; do
  case "$b" in sqlite | postgres) ;; *) die "BENCH_SCALE_BACKENDS: '$b' is neither sqlite nor postgres" ;; esac
done
if [[ " $SCALE_BACKENDS " == *" sqlite "* ]]; then
  scale_backend sqlite
fi
if [[ " $SCALE_BACKENDS " == *" postgres "* ]]; then
  ensure_pg
  if [ -n "$PG_ADMIN_URL" ] && command -v psql >/dev/null && command -v pg_restore >/dev/null; then
    scale_backend postgres
  else
    row --id S-postgres --layout "$LAYOUT" --result skipped --note "no Postgres: set WARDEN_BENCH_PG_URL or install postgresql"
  fi
fi
