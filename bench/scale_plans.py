#!/usr/bin/env python3
"""bench/scale_plans.py: the query plans of the statements one Warden
operation sends, for the `bench/run --scale` rows: on the seeded database a
missing index shows up as a full scan (or as a slow `ms`).

Usage:
  python3 bench/scale_plans.py --url URL --op OP [--param NAME=VALUE ...]

  URL    sqlite:///abs/path.db?mode=rwc or sqlite:/abs/path.db (Warden's
         forms; opened with `query_only`), or postgres://user@host:port/db
         (through the `psql` CLI)
  OP     me refresh login register sessions audit_first audit_deep
         users_search api_key_me cleanup
  NAME   user_id, session_id (a live session of user_id), email,
         refresh_token_hash, api_key (the whole `wdn_...` secret: looked up
         by its SHA-256 in hex, as Warden stores it), heavy_user_id
         (auditLog's account), audit_before (audit_deep's cursor: an audit
         id), search (the `users` prefix). All optional: a missing one is
         picked from the database (a live session, seed-heavy-1@..., the
         middle of the heavy user's events, "kwame"), or made up.

Prints one JSON line: {"op", "backend", "engine", "statements": [{"name",
"src", "sql", "plan", "full_scan", "ms"}], "summary", "full_scan"}.

The statements are Warden's own text, in the order the operation sends them
(`src` says where in src/): sea-orm's, as Postgres logs them with
log_min_duration_statement = 0 and as SQLite's sqlite3_prepare_v3 receives
them (same text, `?` for `$n`, no FOR UPDATE). Three differ by backend:
`me`'s session check (in place on a SQLite file, batched on Postgres), the
refresh rotation (one read and four writes on SQLite; one statement on
Postgres, read from src/services/rotation/postgres.rs), and the `users`
search (on SQLite each LIKE also has the prefix as a binary range).
auditLog and `users` end with record_view: a read of the session's minute
marker (session_views), then the upsert that claims the minute and the
audit row (Warden sends these two only when the marker is absent or a
minute old).

SQLite: EXPLAIN QUERY PLAN with the values bound as Warden binds them (UUIDs
as 16-byte blobs, times as RFC 3339 text); a read is then run once for `ms`.
The plan is that of Python's SQLite library (`engine`), not of the one built
into Warden (LD_PRELOAD a libsqlite3.so.0 of Warden's version to get its
planner: 3.51.3 chose the same plans as 3.40, but for cleanup details).
Postgres: EXPLAIN (ANALYZE, BUFFERS, VERBOSE, FORMAT JSON) with the values
as literals (a custom plan; a pooled prepared statement may switch to a
generic plan after five executions), each in BEGIN ... ROLLBACK, so writes
change nothing; a write that cannot run (a duplicate key, a missing row it
refers to) gets a plain EXPLAIN, and `ms` null. A subplan built once into a
hash table reads `hashed SubPlan n` (else it runs once per outer row).
`full_scan`: SQLite `SCAN <table>` without an index; Postgres `Seq Scan`
that read 1,000 rows or more (an empty or tiny table is read that way).
`cleanup` is src/cleanup.rs run_once: the first batch of its walk over
sessions in id order and the next batch's statement (`id >` the first's
last), the deletes of the revoked and of the dead sessions that batch
found; then the first batch of each other loop, its DELETE with the ids its
SELECT found (a made-up one when none), and the one DELETE of stale
session_views markers.
"""
import argparse, datetime as dt, hashlib, json, re, sqlite3, subprocess, sys, time, uuid
from pathlib import Path

OPS = "me refresh login register sessions audit_first audit_deep users_search api_key_me cleanup".split()
DAY, MINUTE, IP, UA = dt.timedelta(days=1), dt.timedelta(minutes=1), "127.0.0.1", "scale-plans"
COLS = {  # every column of each entity, in sea-orm's order
    "users": "id email username password_hash role created_at last_login_at email_verified_at mfa_enabled_at "
             "disabled_at disabled_reason",
    "sessions": "id user_id created_at last_used_at expires_at revoked_at revoked_reason ip user_agent method amr",
    "refresh_tokens": "id session_id token_hash parent_id issued_at expires_at used_at",
    "audit_events": "id at kind severity user_id session_id ip user_agent detail",
    "api_keys": "id user_id name prefix secret_hash scopes created_at last_used_at expires_at revoked_at",
    "login_attempts": "email attempts window_started_at locked_until updated_at",
    "trusted_devices": "id user_id token_hash created_at last_used_at expires_at revoked_at ip user_agent",
    "email_tokens": "id user_id purpose token_hash code_hash email_key new_email attempts created_at expires_at "
                    "used_at",
    "mail_outbox": "id kind recipient message_id sealed created_at next_attempt_at attempts last_error sent_at "
                   "failed_at claim_owner claim_until",
    "session_views": "session_id kind at",
}
U_ALIASED = ", ".join("u." + c for c in COLS["users"].split())  # entity::user_columns!()


class Uuid(str): pass        # a 16-byte blob on SQLite, 'x'::uuid on Postgres
class Raw(str): pass         # Postgres text as it is (NULL on SQLite)
class Ts(dt.datetime): pass  # RFC 3339 text on SQLite, 'x'::timestamptz on Postgres


def ts(t): return Ts.fromtimestamp(t.timestamp(), dt.timezone.utc)
def new_id(): return Uuid(uuid.uuid4())
def hex64(): return hashlib.sha256(uuid.uuid4().bytes).hexdigest()


def cols(table, alias=None):
    return ", ".join(f'"{table}"."{c}"' + (f' AS "{alias}_{c}"' if alias else "") for c in COLS[table].split())


def q(table, sql):
    """sea-orm's spelling: %T is "table", %C its columns, @col is "table"."col"."""
    sql = sql.replace("%C", cols(table) if table in COLS else "").replace("%T", f'"{table}"')
    return re.sub(r"@(\w+)", rf'"{table}"."\1"', sql)


def S(name, src, sql, row=None, **more):
    """One statement: {x} is the value x (given here, else the op's), {51} a bound 51, {FOR_UPDATE}
    FOR UPDATE on Postgres only, {ESC} the LIKE escape as each backend spells it."""
    return name, "src/" + src, sql, {**(row or {}), **more}


def insert(table, *values):
    """sea-orm's INSERT of every column (but a serial id), values in COLS order: (sql, values)."""
    names = [c for c in COLS[table].split() if (table, c) != ("audit_events", "id")]
    listed, marks = ", ".join(f'"{c}"' for c in names), ", ".join("{%s}" % c for c in names)
    return f'INSERT INTO "{table}" ({listed}) VALUES ({marks})', dict(zip(names, values))


class Db:
    """A backend: renders a statement's values, reads rows, explains."""

    def __init__(self, url):
        self.pg, self.url = url.startswith(("postgres://", "postgresql://")), url
        self.backend = "postgres" if self.pg else "sqlite"
        if not self.pg:
            if not url.startswith("sqlite:"):
                sys.exit(f"scale_plans: not a sqlite: or postgres:// URL: {url}")
            path = url[len("sqlite:"):].split("?", 1)[0]
            path = path[2:] if path.startswith("//") else path
            if not Path(path).is_file():
                sys.exit(f"scale_plans: no SQLite file at {path}")
            self.con = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=30)
            self.con.execute("PRAGMA query_only = ON")  # whatever is asked, nothing is written
        self.engine = ("postgres " + self.psql("SHOW server_version;").strip() if self.pg
                       else "sqlite " + sqlite3.sqlite_version)

    def render(self, sql, p, shape=False):
        """(text, bound values): `?` and values on SQLite, literals on Postgres; `shape`: as Warden's text."""
        bound = []

        def lit(v):
            if isinstance(v, list):
                return ", ".join(lit(x) for x in v)
            if shape:
                bound.append(v)
                return f"${len(bound)}" if self.pg else "?"
            if not self.pg:
                bound.append(None if isinstance(v, Raw) else uuid.UUID(v).bytes if isinstance(v, Uuid)
                             else v.isoformat(timespec="microseconds") if isinstance(v, Ts) else v)
                return "?"
            if v is None or isinstance(v, (Raw, int, float)):
                return "NULL" if v is None else str(v)
            if isinstance(v, bytes):
                return f"'\\x{v.hex()}'::bytea"
            text = "'" + (v.isoformat() if isinstance(v, Ts) else str(v)).replace("'", "''") + "'"
            return text + ("::uuid" if isinstance(v, Uuid) else "::timestamptz" if isinstance(v, Ts) else "")

        sql = sql.replace("{FOR_UPDATE}", " FOR UPDATE" if self.pg else "")
        sql = sql.replace("{ESC}", "E'\\\\'" if self.pg else "'\\'")
        text = re.sub(r"\{(\w+)\}", lambda m: lit(int(m[1]) if m[1].isdigit() else p[m[1]]), sql)
        return text, bound

    def psql(self, script):
        r = subprocess.run(["psql", "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", self.url],
                           input=script, capture_output=True, text=True, timeout=900)
        if r.returncode:
            raise RuntimeError(r.stderr.strip())
        return r.stdout

    def rows(self, sql, **p):
        """A read's rows, UUIDs as Uuid on both backends."""
        text, bound = self.render(sql, p)
        if self.pg:
            is_id = re.compile(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}").fullmatch
            return [[Uuid(x) if is_id(x) else x for x in line.split("\t")]
                    for line in self.psql(text + ";\n").splitlines()]
        return [[Uuid(uuid.UUID(bytes=x)) if isinstance(x, bytes) and len(x) == 16 else x for x in r]
                for r in self.con.execute(text, bound)]

    def one(self, sql, default=None, **p):
        r = self.rows(sql, **p)
        return r[0] if r else default

    def explain(self, sql, p):
        """(one-line plan, full scan?, ms) of one statement. p["_pg_settings"]: SET LOCAL lines
        Warden's transaction has when it sends the statement (Postgres only)."""
        settings = p.get("_pg_settings", "")
        text, bound = self.render(sql, p)
        if self.pg:
            return self.explain_pg(text, settings)
        tree = self.con.execute("EXPLAIN QUERY PLAN " + text, bound).fetchall()  # (id, parent, _, detail)
        ms = None
        if text.startswith("SELECT"):
            t0 = time.perf_counter()
            self.con.execute(text, bound).fetchall()
            ms = (time.perf_counter() - t0) * 1000

        def node(i, detail):
            kids = [node(r[0], r[3]) for r in tree if r[1] == i]
            return detail + (" > " + kids[0] if len(kids) == 1 else " > [" + ", ".join(kids) + "]" if kids else "")

        scan = any(re.fullmatch(r"SCAN (TABLE )?\w+( AS \w+)?", r[3]) and r[3] not in ("SCAN sub_query", "SCAN m") for r in tree)
        return ", ".join(node(r[0], r[3]) for r in tree if r[1] == 0) or "(no read: INSERT ... VALUES)", scan, ms

    def explain_pg(self, text, settings=""):
        run = "BEGIN;\nSET LOCAL statement_timeout = '300s';\nSET LOCAL lock_timeout = '2s';\n" + \
            settings.replace("{", "{{").replace("}", "}}") + "{};\nROLLBACK;\n"
        try:
            top = json.loads(self.psql(run.format("EXPLAIN (ANALYZE, BUFFERS, VERBOSE, FORMAT JSON) " + text)))[0]
        except (RuntimeError, ValueError) as err:  # a write that cannot run here: its plan alone
            print(f"scale_plans: {err}; plain EXPLAIN instead", file=sys.stderr)
            top = json.loads(self.psql(run.format("EXPLAIN (VERBOSE, FORMAT JSON) " + text)))[0]
        # a subplan run once into a hash table (its expression says "hashed SubPlan n": VERBOSE shows it in an
        # output column too), not once per outer row
        hashed = set(re.findall(r"hashed (SubPlan \d+)", json.dumps(top)))

        def node(n):  # 'Node index-or-table (rows, filtered out) > child', siblings in brackets
            name = n.get("Subplan Name")
            what = (("hashed " if name in hashed else "") + name + ": " if name else "") + \
                ("Parallel " if n.get("Parallel Aware") else "") + n["Node Type"]
            what += f" {n.get('Index Name') or n.get('Relation Name') or ''}".rstrip()
            extra = [f"rows {n['Actual Rows']}"] if "Actual Rows" in n else []
            extra += [f"filtered out {n['Rows Removed by Filter']}"] if n.get("Rows Removed by Filter") else []
            what += f" ({', '.join(extra)})" if extra else ""
            kids = [node(k) for k in n.get("Plans", [])]
            return what + (" > " + kids[0] if len(kids) == 1 else " > [" + ", ".join(kids) + "]" if kids else "")

        plan, ms = node(top["Plan"]), top.get("Execution Time")
        if ms is not None:
            buffers = top["Plan"].get("Shared Hit Blocks", 0) + top["Plan"].get("Shared Read Blocks", 0)
            plan += f" [{ms:.2f} ms, {buffers} buffers]"
        for t in top.get("Triggers", []):  # foreign-key checks and cascades
            plan += f" [trigger {t.get('Constraint Name') or t['Trigger Name']}: {t['Time']:.2f} ms]"
        return plan, big_seq_scan(top["Plan"]), ms


def big_seq_scan(n):
    """A Seq Scan that read 1,000 rows or more (kept plus filtered out; per loop, times the loops), or one
    planned without running (no row counts): a scan of a table that is empty, or of a few dozen rows,
    is how Postgres reads a small table, not a missing index."""
    if n["Node Type"] == "Seq Scan":
        if "Actual Rows" not in n:
            return True
        if (n["Actual Rows"] + n.get("Rows Removed by Filter", 0)) * n.get("Actual Loops", 1) >= 1000:
            return True
    return any(big_seq_scan(k) for k in n.get("Plans", []))


def rotation_statement():
    """ONE_STATEMENT of src/services/rotation/postgres.rs, as Warden sends it."""
    src = (Path(__file__).resolve().parent.parent / "src/services/rotation/postgres.rs").read_text()
    m = re.search(r'ONE_STATEMENT: &str = concat!\(\s*"\\\n(.*?)",\s*entity::user_columns!\(\),\s*"(.*?)"\s*\);',
                  src, re.S)
    if not m:
        sys.exit("scale_plans: no ONE_STATEMENT in src/services/rotation/postgres.rs")
    return re.sub(r"\$(\d+)", r"{p\1}", m[1] + U_ALIASED + m[2])


def auth(db, uid, sid):
    """The bearer's session check (src/db/liveness): in place on a SQLite file, batched on Postgres."""
    if db.pg:
        return [S("live session and owner", "db/liveness.rs live_owners",
                  f'SELECT {cols("users")}, "sessions"."id" AS "live_session_id" FROM "users" INNER JOIN "sessions" '
                  'ON "users"."id" = "sessions"."user_id" WHERE "sessions"."id" IN ({ids}) AND '
                  '"sessions"."revoked_at" IS NULL AND "sessions"."expires_at" > {now}', ids=[sid])]
    return [S("session and owner, in place", "db/liveness/inline.rs OWNER_OF_SESSION",
              f"SELECT {U_ALIASED}, s.expires_at FROM sessions s JOIN users u ON u.id = s.user_id "
              "WHERE s.id = {s} AND s.user_id = {u} AND s.revoked_at IS NULL", s=sid, u=uid)]


def audit(v, kind, user, session=None, src="services/audit.rs record", name="audit insert"):
    return S(name, src, *insert("audit_events", v["now"], kind, 0, user, session, IP, UA, Raw("NULL::jsonb")))


def sign_in(v):
    """A session for a right password, in login's and register's transaction."""
    now, uid, src = v["now"], v["uid"], "services/accounts/sign_in.rs sign_in"
    return [S("trusted device insert", "services/trusted_devices.rs issue", *insert(
                "trusted_devices", new_id(), uid, hex64(), now, now, ts(now + 90 * DAY), None, IP, UA)),
            S("trusted devices over the cap", "services/trusted_devices.rs issue", q(
                "trusted_devices", "SELECT @id FROM %T WHERE @user_id = {uid} ORDER BY @last_used_at DESC, @id DESC "
                "LIMIT {100} OFFSET {20}")),
            S("session insert", "services/sessions/start.rs start", *insert(
                "sessions", new_id(), uid, now, now, ts(now + 30 * DAY), None, None, IP, UA, "PASSWORD", "pwd")),
            S("refresh token insert", "services/sessions/start.rs start", *insert(
                "refresh_tokens", new_id(), v["sid"], hex64(), None, now, ts(now + 7 * DAY), None)),
            S("last login stamp", src,
              q("users", 'UPDATE %T SET "last_login_at" = {now} WHERE @id = {uid} AND @password_hash = {uhash}')),
            S("disabled re-check", src,
              q("users", "SELECT %C FROM %T WHERE @id = {uid} AND @disabled_at IS NOT NULL LIMIT {1}")),
            audit(v, "LOGIN_SUCCEEDED", uid, v["sid"])]


def viewed(v, kind, uid, sid):
    """audit.rs record_view: one audit row per session, kind and minute, decided by the session's marker in
    session_views (a primary-key read on the read pool; when it is absent or a minute old, a transaction
    claims the minute with an upsert, then writes the audit row)."""
    src = "services/audit.rs record_view"
    claim = insert("session_views", sid, kind, v["now"])
    return [S("view: this minute's marker", src,
              q("session_views", "SELECT %C FROM %T WHERE @session_id = {s} AND @kind = {k} LIMIT {1}"),
              s=sid, k=kind),
            S("view: marker claim (once a minute)", src, claim[0] + ' ON CONFLICT ("session_id", "kind") DO UPDATE '
              'SET "at" = "excluded"."at" WHERE "session_views"."at" <= {cut}', claim[1], cut=ts(v["now"] - MINUTE)),
            audit(v, kind, uid, sid, name="view: audit insert (once a minute)")]


def prefix_successor(prefix):
    """admin/users.rs prefix_successor: the prefix with its last character one code point on (None past the
    last one)."""
    if not prefix:
        return None
    last = ord(prefix[-1])
    if last == 0xD7FF:
        return prefix[:-1] + "\uE000"
    return prefix[:-1] + chr(last + 1) if last < 0x10FFFF else None


def statements(db, op, v):
    """[(name, src, sql, values)] in the order Warden sends them for `op`."""
    now, uid = v["now"], v["uid"]
    by_email = lambda e: S("user by email", "services/accounts/lookup.rs find_by_email",
                           q("users", "SELECT %C FROM %T WHERE @email = {e}"), e=e)
    if op == "me":
        return auth(db, uid, v["sid"])
    if op == "sessions":
        return auth(db, uid, v["sid"]) + [S("live sessions of the account", "services/devices.rs list", q(
            "sessions", "SELECT %C FROM %T WHERE @user_id = {uid} AND @revoked_at IS NULL AND @expires_at > {now} "
            "ORDER BY @last_used_at DESC"))]
    if op == "refresh":
        nxt, nxt_hash, nxt_end = new_id(), hex64(), ts(now + 7 * DAY)
        if db.pg:  # $1 hash, $2 now, $3 successor id, $4 its hash, $5 now + TTL, $6..$10 the audit row
            return [S("rotation in one statement", "services/rotation/postgres.rs ONE_STATEMENT", rotation_statement(),
                      p1=v["rhash"], p2=now, p3=nxt, p4=nxt_hash, p5=nxt_end, p6="TOKEN_REFRESHED", p7=0, p8=IP,
                      p9=UA, p10=Raw("NULL::jsonb"))]
        src = "services/rotation/sqlite.rs "
        return [S("token, session and owner by hash", src + "read_then_write",
                  f'SELECT {cols("refresh_tokens", "A")}, {cols("sessions", "B")}, {cols("users", "C")} FROM '
                  '"refresh_tokens" LEFT JOIN "sessions" ON "refresh_tokens"."session_id" = "sessions"."id" LEFT JOIN '
                  '"users" ON "sessions"."user_id" = "users"."id" WHERE "refresh_tokens"."token_hash" = {rhash}'),
                S("session touch", src + "in_transaction",
                  q("sessions", 'UPDATE %T SET "last_used_at" = {now} WHERE @id = {rt_sid} AND @revoked_at IS NULL')),
                S("token claim", src + "in_transaction",
                  q("refresh_tokens", 'UPDATE %T SET "used_at" = {now} WHERE @id = {rt_id} AND @used_at IS NULL')),
                S("successor insert", src + "in_transaction", *insert(
                    "refresh_tokens", nxt, v["rt_sid"], nxt_hash, v["rt_id"], now, nxt_end, None)),
                audit(v, "TOKEN_REFRESHED", uid, v["rt_sid"], src + "in_transaction")]
    if op == "login":  # a right password, no device token, no second factor
        key = hashlib.md5(v["email"].encode()).hexdigest()  # a pseudonym's shape (Warden's is keyed)
        client, la, row = key + "|ip:" + IP, "services/lockout", insert("login_attempts", key, 0, now, None, now)
        upsert = ' ON CONFLICT ("email") DO UPDATE SET ' + ", ".join(
            f'"{c}" = "excluded"."{c}"' for c in COLS["login_attempts"].split()[1:])
        return [by_email(v["email"]),
                S("lockout: email row", la + ".rs reserve", row[0] + ' ON CONFLICT ("email") DO NOTHING', row[1]),
                S("lockout: both rows held", la + ".rs held_counters", q(
                    "login_attempts", "SELECT %C FROM %T WHERE @email IN ({k}, {c}) ORDER BY @email ASC{FOR_UPDATE}"),
                  k=key, c=client),
                S("lockout: client row", la + ".rs store", row[0] + upsert, row[1], email=client, attempts=1),
                S("lockout: email count", la + ".rs store", q(
                    "login_attempts", 'UPDATE %T SET "attempts" = {1}, "window_started_at" = {now}, "locked_until" = '
                    '{none}, "updated_at" = {now} WHERE @email = {k}'), k=key, none=None),
                S("lockout settled: email count", la + "/attempt.rs settle", q(
                    "login_attempts", 'UPDATE %T SET "attempts" = "attempts" - {1} WHERE @email = {k} AND '
                    "@attempts > {0}"), k=key),
                S("lockout settled: client row", la + "/attempt.rs settle",
                  q("login_attempts", "DELETE FROM %T WHERE @email = {c}"), c=client)] + sign_in(v)
    if op == "register":
        email, owner, mail, src = f"scale-plans-{uuid.uuid4().hex[:12]}@example.com", new_id(), v["mail_id"], \
            "services/mail/mod.rs "
        due = ("@sent_at IS NULL AND @failed_at IS NULL AND @next_attempt_at <= {now} AND "
               "(@claim_until IS NULL OR @claim_until < {now})")
        return [by_email(email),
                S("user insert", "services/accounts/register.rs insert_user", *insert(
                    "users", new_id(), email, None, v["uhash"], "USER", now, None, None, None, None, None)),
                S("account row lock", "services/email/tokens.rs issue",
                  q("users", "SELECT %C FROM %T WHERE @id = {uid} LIMIT {1}{FOR_UPDATE}")),
                S("older verify tokens superseded", "services/email/tokens.rs issue", q(
                    "email_tokens", 'UPDATE %T SET "used_at" = {now} WHERE @user_id = {uid} AND '
                    "@purpose = {purpose} AND @used_at IS NULL"), purpose="verify"),
                S("email token insert", "services/email/tokens.rs issue", *insert(
                    "email_tokens", new_id(), uid, "verify", hex64(), hex64(), hex64()[:32], None, 0, now,
                    ts(now + DAY), None)),
                S("outbox insert", src + "enqueue", *insert(
                    "mail_outbox", new_id(), "verify-email", email, f"{owner}@localhost", b"\0" * 64, now, now, 0,
                    None, None, None, None, None)),
                audit(v, "EMAIL_VERIFICATION_SENT", uid, None, "services/email/verify.rs queue_verification")
                ] + sign_in(v) + [  # then the mail sender, woken by each register
                S("mail: due rows", src + "deliver_due",
                  q("mail_outbox", f"SELECT @id FROM %T WHERE {due} ORDER BY @next_attempt_at ASC LIMIT {{32}}")),
                S("mail: claim", src + "claim", q(
                    "mail_outbox", f'UPDATE %T SET "claim_owner" = {{o}}, "claim_until" = {{until}} WHERE @id = {{m}} '
                    f"AND {due}"), o=owner, until=ts(now + 2 * MINUTE), m=mail),
                S("mail: its row", src + "deliver_one", q("mail_outbox", "SELECT %C FROM %T WHERE @id = {m} LIMIT {1}"),
                  m=mail),
                S("mail: sent", src + "deliver_one", q(
                    "mail_outbox", 'UPDATE %T SET "attempts" = {1}, "claim_owner" = {none}, "claim_until" = {none}, '
                    '"sent_at" = {now}, "sealed" = {none} WHERE @id = {m} AND @claim_owner = {o}'),
                  none=None, m=mail, o=owner),
                S("mail: outbox depth gauge", src + "deliver_due", q(
                    "mail_outbox", 'SELECT COUNT(*) AS num_items FROM (SELECT %C FROM %T WHERE @sent_at IS NULL AND '
                    '@failed_at IS NULL) AS "sub_query"'))]
    if op in ("audit_first", "audit_deep"):  # auditLog(first: 50) as the heavy user, then deeper by cursor
        deep = " AND @id < {before}" if op == "audit_deep" else ""
        return auth(db, v["heavy"], v["heavy_sid"]) + [
            S("audit page" + (" before the cursor" if deep else ""), "services/audit_log.rs page", q(
                "audit_events", f"SELECT %C FROM %T WHERE @user_id = {{heavy}}{deep} ORDER BY @id DESC LIMIT {{51}}"))
        ] + viewed(v, "AUDIT_LOG_VIEWED", v["heavy"], v["heavy_sid"])
    if op == "users_search":  # users(first: 50, filter: {search}) as an admin
        search = v["search"].strip().lower()
        pat, nxt = re.sub(r"([%_\\])", r"\\\1", search) + "%", prefix_successor(search)
        like = '"email" LIKE {pat} ESCAPE {ESC} OR LOWER("username") LIKE {pat} ESCAPE {ESC}'
        if not db.pg and nxt is not None:  # on SQLite the prefix also as a binary range, for the indexes
            like = ('("email" LIKE {pat} ESCAPE {ESC} AND "users"."email" >= {lo} AND "users"."email" < {hi}) OR '
                    '(LOWER("username") LIKE {pat} ESCAPE {ESC} AND LOWER("username") >= {lo} AND '
                    'LOWER("username") < {hi})')
        bound = dict(pat=pat, lo=search, hi=nxt)
        src = "services/admin/users.rs "
        # The search transaction (Postgres): custom plans, and no sequential or bitmap scan while the
        # indexes are asked (`probe`); the page is read with both back on.
        custom = "SET LOCAL plan_cache_mode = force_custom_plan;\n"
        asking = dict(bound, _pg_settings=custom + "SET LOCAL enable_seqscan = off;\nSET LOCAL enable_bitmapscan = off;\n")
        email, username = like[1:-1].split(") OR (", 1) if like.startswith("(") else like.split(" OR ", 1)
        out = auth(db, v["admin"], v["admin_sid"])
        walks = False
        for side, cond in (("email", email), ("username", username)):
            count = f'SELECT COUNT(*) AS "n" FROM (SELECT 1 FROM "users" WHERE {cond} LIMIT {{5001}}) AS "m"'
            out.append(S(f"search: count {side} matches (up to NARROW + 1)", src + "ask_indexes", count, **asking))
            if int(db.one(count, **bound)[0]) > 5000:  # more than NARROW: the primary key is walked
                walks = True
                break
        if walks:
            out.append(S("search walk by id", src + "fetch",
                         q("users", f"SELECT %C FROM %T WHERE {like} ORDER BY @id ASC LIMIT {{51}}"),
                         **dict(bound, _pg_settings=custom)))
        else:  # each index gives all its matches' ids, unordered; the first 51 of both are read by id
            ids = set()
            for side, cond in (("email", email), ("username", username)):
                first = f'SELECT "users"."id" FROM "users" WHERE {cond} LIMIT {{5001}}'
                out.append(S(f"search: ids by {side}", src + "ask_indexes", first, **asking))
                ids.update(r[0] for r in db.rows(first, **bound))
            ids = sorted(ids)[:51]
            if ids:
                out.append(S("search page by ids", src + "by_ids",
                             q("users", "SELECT %C FROM %T WHERE @id IN ({ids}) ORDER BY @id ASC"), ids=ids,
                             _pg_settings=custom))
        return out + viewed(v, "USERS_VIEWED", v["admin"], v["admin_sid"])
    if op == "api_key_me":
        src = "services/api_keys/authenticate.rs "
        return [S("key and owner by hash", src + "live",
                  f'SELECT {cols("api_keys", "A")}, {cols("users", "B")} FROM "api_keys" LEFT JOIN "users" ON '
                  '"api_keys"."user_id" = "users"."id" WHERE "api_keys"."secret_hash" = {key_hash} LIMIT {1}'),
                S("last use stamp (hourly)", src + "record_use", q(
                    "api_keys", 'UPDATE %T SET "last_used_at" = {now} WHERE @id = {key_id} AND '
                    "(@last_used_at IS NULL OR @last_used_at <= {cut})"), cut=ts(now - 60 * MINUTE)),
                audit(v, "API_KEY_USED", v["key_user"], None, src + "record_use", "audit insert (hourly)")]
    return cleanup(db, v)


def cleanup(db, v):
    """src/cleanup.rs run_once with Warden's default retentions: the first batch of its walk over sessions (and
    the statement of the next batch), the deletes of that batch, then each other loop's SELECT and DELETE."""
    now, out, kept = v["now"], [], ts(v["now"] - 30 * DAY)  # WARDEN_REVOKED_RETENTION's default
    walk = 'SELECT @id, @revoked_at, @expires_at FROM %T{where} ORDER BY @id ASC LIMIT {1000}'
    first, later = (q("sessions", walk.replace("{where}", w)) for w in ("", " WHERE @id > {after}"))
    walked = db.rows(first, now=now)
    when = lambda x: None if x in (None, "") else dt.datetime.fromisoformat(x)
    # The live, unexpired sessions of the batch: which still have a usable token (the second statement).
    undecided = [sid for sid, revoked_at, expires_at in walked
                 if when(revoked_at) is None and when(expires_at) > now]
    usable_sql = q("refresh_tokens", "SELECT @session_id FROM %T WHERE @session_id IN ({ids}) "
                   "AND @used_at IS NULL AND @expires_at > {now}")
    usable = {r[0] for r in db.rows(usable_sql, now=now, ids=undecided)} if undecided else set()
    revoked, dead = [], []
    for sid, revoked_at, expires_at in walked:  # session_batch's caller: the same split
        revoked_at = when(revoked_at)
        if revoked_at is not None:
            revoked += [sid] if revoked_at < kept else []
        elif when(expires_at) <= now or sid not in usable:
            dead.append(sid)
    after = walked[-1][0] if walked else new_id()
    out += [S(f"sessions walk ({len(walked)})", "cleanup.rs session_batch", first),
            S("sessions walk: next batch", "cleanup.rs session_batch", later, after=after),
            S(f"sessions walk: usable tokens ({len(undecided)})", "cleanup.rs session_batch", usable_sql,
              ids=undecided or [new_id()])]
    for name, ids in [("revoked sessions", revoked), ("expired or spent sessions", dead)]:
        ids = ids or [new_id()]  # none: Warden sends nothing; one made up shows the plan
        out += [S(f"{name}: lock ({len(ids)})", "cleanup.rs delete_sessions",
                  q("sessions", "SELECT @id FROM %T WHERE @id IN ({ids}){FOR_UPDATE}"), ids=ids),
                S(f"{name}: their tokens", "cleanup.rs delete_sessions",
                  q("refresh_tokens", "DELETE FROM %T WHERE @session_id IN ({ids})"), ids=ids),
                S(f"{name}: delete", "cleanup.rs delete_sessions",
                  q("sessions", "DELETE FROM %T WHERE @id IN ({ids})"), ids=ids)]
    # table, key, what is due (every DELETE repeats it: `again`), the cutoff, ORDER BY; key None: one DELETE
    for table, key, due, again, cut, order in [
            ("audit_events", "id", "@at < {cut}", " AND {due}", 90 * DAY, " ORDER BY @at ASC"),
            ("login_attempts", "email", "@window_started_at < {cut} AND (@locked_until IS NULL OR "
             "@locked_until < {now})", " AND {due}", 15 * MINUTE, ""),
            ("trusted_devices", "id", "@expires_at <= {now} OR @revoked_at <= {now}", " AND ({due})", 0 * DAY, ""),
            ("mail_outbox", "id", "@sent_at < {cut} OR @failed_at < {cut}", " AND ({due})", 7 * DAY, ""),
            ("email_tokens", "id", "@used_at < {cut} OR @expires_at < {cut}", " AND ({due})", DAY, ""),
            ("mfa_tokens", "id", "@expires_at < {cut}", " AND {due}", 60 * MINUTE, ""),
            ("webauthn_challenges", "id", "@expires_at < {cut}", " AND {due}", 60 * MINUTE, ""),
            ("session_views", None, "@at < {cut}", "", MINUTE, ""),  # the minute markers of audited reads
            ("api_keys", "id", "@revoked_at < {cut} OR @expires_at < {cut}", " AND ({due})", 30 * DAY, "")]:
        if key is None:
            out.append(S(f"{table}: delete", "cleanup.rs run_once", q(table, f"DELETE FROM %T WHERE {due}"),
                         cut=ts(now - cut)))
            continue
        sql = q(table, f"SELECT @{key} FROM %T WHERE {due}{order} LIMIT {{1000}}")
        ids = [int(r[0]) if table == "audit_events" else r[0] for r in db.rows(sql, now=now, cut=ts(now - cut))]
        if not ids:  # nothing due: Warden sends no DELETE; one that matches nothing shows its plan
            ids = [0 if table == "audit_events" else "-" if key == "email" else new_id()]
        out += [S(f"{table}: due", "cleanup.rs run_once", sql, cut=ts(now - cut)),
                S(f"{table}: delete ({len(ids)})", "cleanup.rs run_once",
                  q(table, f"DELETE FROM %T WHERE @{key} IN ({{ids}}){again.replace('{due}', due)}"),
                  ids=ids, cut=ts(now - cut))]
    return out


def values(db, params):
    """The op's values: the parameters given, else picked from the database, else made up."""
    now = ts(dt.datetime.now(dt.timezone.utc))
    live = '"revoked_at" IS NULL AND "expires_at" > {now}'
    session_of = lambda u: db.one(f'SELECT "id" FROM "sessions" WHERE "user_id" = {{u}} AND {live} LIMIT 1',
                                  [new_id()], u=u, now=now)[0]
    v = dict(now=now)
    uid, sid = (params["user_id"], None) if params.get("user_id") else db.one(
        f'SELECT "user_id", "id" FROM "sessions" WHERE {live} LIMIT 1', [new_id(), None], now=now)
    v["uid"] = Uuid(uid)
    v["sid"] = Uuid(params.get("session_id") or sid or session_of(v["uid"]))
    email, v["uhash"] = db.one('SELECT "email", "password_hash" FROM "users" WHERE "id" = {u}',
                               ["nobody@example.com", "$2b$04$" + "x" * 53], u=v["uid"])
    v["email"] = params.get("email") or email
    rt = '"token_hash", "id", "session_id" FROM "refresh_tokens" WHERE'
    h = params.get("refresh_token_hash")
    v["rhash"], v["rt_id"], v["rt_sid"] = (
        db.one(f'SELECT {rt} "token_hash" = {{h}}', [h, new_id(), v["sid"]], h=h) if h else
        db.one(f'SELECT {rt} "session_id" = {{s}} AND "used_at" IS NULL LIMIT 1', s=v["sid"])
        or db.one(f'SELECT {rt} "used_at" IS NULL LIMIT 1', [hex64(), new_id(), v["sid"]]))
    key = params.get("api_key")
    kh = hashlib.sha256(key.encode()).hexdigest() if key else None  # auth/api_key.rs: SHA-256, lowercase hex
    k = 'SELECT "secret_hash", "id", "user_id" FROM "api_keys" WHERE'
    v["key_hash"], v["key_id"], v["key_user"] = (
        db.one(f'{k} "secret_hash" = {{h}}', [kh, new_id(), v["uid"]], h=kh) if kh else
        db.one(f'{k} "revoked_at" IS NULL LIMIT 1', [hex64(), new_id(), v["uid"]]))
    v["heavy"] = Uuid(params.get("heavy_user_id") or db.one(
        'SELECT "id" FROM "users" WHERE "email" = {e}', [v["uid"]], e="seed-heavy-1@seed.example.com")[0])
    v["heavy_sid"] = session_of(v["heavy"])
    before = params.get("audit_before")
    if not before:  # the middle of the heavy user's events
        n = int(db.one('SELECT COUNT(*) FROM "audit_events" WHERE "user_id" = {u}', u=v["heavy"])[0])
        before = db.one('SELECT "id" FROM "audit_events" WHERE "user_id" = {u} ORDER BY "id" DESC LIMIT 1 OFFSET {n}',
                        [1], u=v["heavy"], n=n // 2)[0]
    v["before"], v["search"] = int(before), params.get("search") or "kwame"
    v["admin"] = Uuid(db.one('SELECT "id" FROM "users" WHERE "role" = {r} LIMIT 1', [new_id()], r="ADMIN")[0])
    v["admin_sid"] = session_of(v["admin"])
    v["mail_id"] = db.one('SELECT "id" FROM "mail_outbox" LIMIT 1', [new_id()])[0]
    return v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--op", required=True, choices=OPS)
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    a = ap.parse_args()
    db = Db(a.url)
    v = values(db, {k: x for k, x in (p.split("=", 1) for p in a.param if "=" in p) if x})
    out = []
    for name, src, sql, p in statements(db, a.op, v):
        plan, scan, ms = db.explain(sql, {**v, **p})
        text = " ".join(db.render(sql, {**v, **p}, shape=True)[0].split())
        out.append(dict(name=name, src=src, sql=text, plan=plan, full_scan=scan, ms=ms and round(ms, 3)))
    print(json.dumps(dict(op=a.op, backend=db.backend, engine=db.engine, statements=out,
                          summary="; ".join(f"{s['name']}: {s['plan']}" for s in out),
                          full_scan=any(s["full_scan"] for s in out))))


if __name__ == "__main__":
    main()
