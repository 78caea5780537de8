#!/usr/bin/env python3
"""Helpers for bench/run (standard library only; loopback only).

Subcommands:
  register   create accounts over GraphQL, write "email<TAB>access<TAB>refresh" lines
  apikeys    create one API key per access token (createApiKey), write the secrets (W13)
  login      sign one account in, print its access token (W14's admin)
  forge      turn valid access tokens into tokens with a bad signature (W2)
  openloop   offer requests at a fixed rate (low rates: login), classify answers (W5, W6)
  conns      hold many keep-alive connections open and read the server's RSS (W8)
  startup    time process start to the first /readyz 200 (W9)
  criterion  read criterion's estimates (ns) for the limits
  wrkjson    pull the BENCHJSON line out of wrk's output
  median     median of several BENCHJSON runs, field by field
  paired     median of the differences B - A over alternated pairs of runs
  redisrtt   time Warden's limiter script against Redis at a fixed rate (W7's floor)
  fill       send N `requestPasswordReset` as fast as a few connections go (W12's queue)
  outbox     count a SQLite database's outbox rows: waiting, sent, given up (W12)
  explain    one line out of Postgres's EXPLAIN (FORMAT JSON) output: nodes, indexes, times (W14)
  get        print one field of a JSON object (dotted path), or nothing
  calc       print the value of an arithmetic expression (floats)
  row        turn one measurement into one result row (ratio, goal, pass/fail)
  report     print the table and write results.json
Every network call goes to 127.0.0.1 and every loop has a deadline.
"""

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

HOST = "127.0.0.1"


def die(msg):
    print(f"tools.py: {msg}", file=sys.stderr)
    sys.exit(1)


def post_json(port, payload, token=None, timeout=30):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(
        f"http://{HOST}:{port}/graphql",
        data=json.dumps(payload).encode(),
        headers=headers,
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


# --------------------------------------------------------------------- register
REGISTER = (
    "mutation($i: RegisterInput!) { register(input: $i) { accessToken refreshToken } }"
)


def cmd_register(a):
    def one(i):
        email = f"{a.prefix}{i}@bench.example.com"
        # A busy machine (or a debug build) can fill the hashing queue:
        # SERVICE_UNAVAILABLE means "try again shortly", so set-up does.
        for attempt in range(50):
            body = post_json(
                a.port,
                {"query": REGISTER, "variables": {"i": {"email": email, "password": a.password}}},
            )
            if "SERVICE_UNAVAILABLE" not in json.dumps(body.get("errors") or []):
                break
            time.sleep(0.1 * (attempt + 1))
        data = (body.get("data") or {}).get("register")
        if not data:
            raise RuntimeError(f"register {email}: {body.get('errors')}")
        return f"{email}\t{data['accessToken']}\t{data['refreshToken']}"

    deadline = time.monotonic() + a.timeout
    lines = []
    with ThreadPoolExecutor(max_workers=a.parallel) as pool:
        for line in pool.map(one, range(a.n)):
            lines.append(line)
            if time.monotonic() > deadline:
                die("register: out of time")
    with open(a.out, "w") as f:
        f.write("\n".join(lines) + "\n")


CREATE_KEY = "mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { secret } }"


def cmd_apikeys(a):
    """One key per access token (each token's own account), in the order of
    the tokens: the keys of W13 are spread over accounts as W1's tokens are."""
    with open(a.tokens) as f:
        tokens = [line.strip() for line in f if line.strip()]
    scopes = [s for s in a.scopes.split(",") if s]

    def one(pair):
        i, token = pair
        variables = {"i": {"name": f"{a.name} {i}", "scopes": scopes}}
        body = post_json(a.port, {"query": CREATE_KEY, "variables": variables}, token=token)
        data = (body.get("data") or {}).get("createApiKey")
        if not data:
            raise RuntimeError(f"createApiKey {i}: {body.get('errors')}")
        return data["secret"]

    with ThreadPoolExecutor(max_workers=a.parallel) as pool:
        secrets = list(pool.map(one, enumerate(tokens)))
    with open(a.out, "w") as f:
        f.write("\n".join(secrets) + "\n")


LOGIN = "mutation($i: LoginInput!) { login(input: $i) { accessToken } }"


def cmd_login(a):
    body = post_json(a.port, {"query": LOGIN, "variables": {"i": {"email": a.email, "password": a.password}}})
    data = (body.get("data") or {}).get("login") or {}
    if not data.get("accessToken"):
        die(f"login {a.email}: {body.get('errors')}")
    print(data["accessToken"])


LOGIN_BOTH = "mutation($i: LoginInput!) { login(input: $i) { accessToken refreshToken } }"


def cmd_logins(a):
    """Logs in every email of a file (one per line, all with one password),
    `times` times each; writes `email<TAB>access<TAB>refresh` per login."""
    with open(a.emails) as f:
        emails = [line.strip() for line in f if line.strip()]

    def one(email):
        for attempt in range(50):
            body = post_json(a.port, {"query": LOGIN_BOTH, "variables": {"i": {"email": email, "password": a.password}}})
            if "SERVICE_UNAVAILABLE" not in json.dumps(body.get("errors") or []):
                break
            time.sleep(0.1 * (attempt + 1))
        data = (body.get("data") or {}).get("login") or {}
        if not data.get("accessToken"):
            raise RuntimeError(f"login {email}: {body.get('errors')}")
        return f"{email}\t{data['accessToken']}\t{data['refreshToken']}"

    with ThreadPoolExecutor(max_workers=a.parallel) as pool:
        lines = list(pool.map(one, [e for e in emails for _ in range(a.times)]))
    with open(a.out, "w") as f:
        f.write("\n".join(lines) + "\n")


def cmd_forge(a):
    out = []
    with open(a.infile) as f:
        for line in f:
            token = line.strip()
            if not token:
                continue
            # Flip the signature's middle character: a well-formed, forged token.
            head, payload, sig = token.split(".")
            mid = len(sig) // 2
            flipped = "A" if sig[mid] != "A" else "B"
            out.append(f"{head}.{payload}.{sig[:mid]}{flipped}{sig[mid + 1:]}")
    with open(a.out, "w") as f:
        f.write("\n".join(out) + "\n")


# --------------------------------------------------------------------- openloop
async def http_exchange(reader, writer, request, timeout):
    writer.write(request)
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    length = 0
    close = False
    for line in lines[1:]:
        k, _, v = line.partition(":")
        k = k.strip().lower()
        if k == "content-length":
            length = int(v.strip())
        elif k == "connection" and v.strip().lower() == "close":
            close = True
    body = await asyncio.wait_for(reader.readexactly(length), timeout) if length else b""
    return status, body, close


def classify(status, body):
    if status != 200:
        return f"http_{status}"
    if b'"errors"' not in body:
        return "ok"
    for code in (b"RATE_LIMITED", b"SERVICE_UNAVAILABLE", b"ACCOUNT_LOCKED", b"INVALID_CREDENTIALS"):
        if code in body:
            return code.decode()
    return "other_error"


def pct(values, p):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, round((len(values) - 1) * p))]


async def openloop(a):
    bodies = []
    with open(a.logins) as f:
        for line in f:
            email = line.strip().split("\t")[0]
            if email:
                bodies.append(
                    json.dumps(
                        {
                            "query": "mutation($i: LoginInput!) { login(input: $i) { accessToken } }",
                            "variables": {"i": {"email": email, "password": a.password}},
                        }
                    ).encode()
                )
    if not bodies:
        die("openloop: no logins")
    requests = [
        (
            f"POST /graphql HTTP/1.1\r\nHost: {HOST}:{a.port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(b)}\r\n\r\n"
        ).encode()
        + b
        for b in bodies
    ]
    idle = []
    results = []  # (class, latency seconds)
    inflight = 0
    peak_inflight = 0
    dropped = 0

    async def one(i, scheduled):
        nonlocal inflight, peak_inflight
        inflight += 1
        peak_inflight = max(peak_inflight, inflight)
        conn = idle.pop() if idle else None
        try:
            if conn is None:
                conn = await asyncio.wait_for(asyncio.open_connection(HOST, a.port), a.timeout)
            reader, writer = conn
            status, body, close = await http_exchange(
                reader, writer, requests[i % len(requests)], a.timeout
            )
            results.append((classify(status, body), time.monotonic() - scheduled))
            if close:
                writer.close()
            else:
                idle.append(conn)
        except (asyncio.TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            results.append(("timeout_or_io", time.monotonic() - scheduled))
            if conn is not None:
                conn[1].close()
        finally:
            inflight -= 1

    stop = asyncio.Event()
    import signal

    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    start = time.monotonic()
    tasks = []
    interval = 1.0 / a.rate
    i = 0
    while not stop.is_set():
        scheduled = start + i * interval
        if scheduled >= start + a.duration:
            break
        delay = scheduled - time.monotonic()
        if delay > 0:
            try:
                await asyncio.wait_for(stop.wait(), delay)
                break  # SIGTERM: stop offering, report what was answered
            except asyncio.TimeoutError:
                pass
        if inflight >= a.max_inflight:
            dropped += 1
        else:
            tasks.append(asyncio.ensure_future(one(i, scheduled)))
        i += 1
    offered_for = min(a.duration, time.monotonic() - start)
    if tasks:
        await asyncio.wait(tasks, timeout=5 if stop.is_set() else a.timeout + 1)
    elapsed = time.monotonic() - start
    for _, writer in idle:
        writer.close()
    by_class = {}
    for cls, lat in results:
        by_class.setdefault(cls, []).append(lat)
    refused_lat = by_class.get("RATE_LIMITED", []) + by_class.get("SERVICE_UNAVAILABLE", [])
    ok_lat = by_class.get("ok", [])
    all_lat = [lat for _, lat in results]
    ms = lambda v: None if v is None else round(v * 1000, 2)  # noqa: E731
    out = {
        "offered_rate": a.rate,
        "sent": i - dropped,
        "dropped_by_generator": dropped,
        "completed": len(results),
        "seconds": round(elapsed, 3),
        "classes": {k: len(v) for k, v in sorted(by_class.items())},
        "ok": len(ok_lat),
        "offered_for_s": round(offered_for, 3),
        "ok_rps": round(len(ok_lat) / max(offered_for, 1e-9), 2),
        "refused": len(refused_lat),
        "errors": len(results) - len(ok_lat) - len(refused_lat),
        "peak_inflight": peak_inflight,
        "p50_ms": ms(pct(all_lat, 0.5)),
        "p99_ms": ms(pct(all_lat, 0.99)),
        "ok_p50_ms": ms(pct(ok_lat, 0.5)),
        "ok_p99_ms": ms(pct(ok_lat, 0.99)),
        "refused_p50_ms": ms(pct(refused_lat, 0.5)),
        "refused_p99_ms": ms(pct(refused_lat, 0.99)),
    }
    print(json.dumps(out))


def cmd_openloop(a):
    asyncio.run(openloop(a))


# ------------------------------------------------------------------------ conns
def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


async def conns(a):
    token = a.token
    body = b'{"query":"{ me { id } }"}'
    request = (
        f"POST /graphql HTTP/1.1\r\nHost: {HOST}:{a.port}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    deadline = time.monotonic() + a.timeout
    opened = []
    failures = 0
    sem = asyncio.Semaphore(200)

    async def open_one():
        nonlocal failures
        async with sem:
            if time.monotonic() > deadline:
                failures += 1
                return
            try:
                # Beyond one source address's ~28k ephemeral ports,
                # connections come from 127.0.0.2, .3, … (all loopback).
                source = (f"127.0.0.{1 + len(opened) // 20000}", 0) if a.n > 20000 else None
                r, w = await asyncio.wait_for(asyncio.open_connection(HOST, a.port, local_addr=source), 10)
                status, resp, _ = await http_exchange(r, w, request, 10)
                if status != 200 or b'"errors"' in resp:
                    failures += 1
                opened.append((r, w))
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError):
                failures += 1

    await asyncio.gather(*(open_one() for _ in range(a.n)))
    await asyncio.sleep(a.hold)
    rss = rss_kb(a.pid)
    # One more request on every open connection: they are alive, not half-closed.
    alive = 0
    for r, w in opened:
        if time.monotonic() > deadline:
            break
        try:
            status, _, _ = await http_exchange(r, w, request, 10)
            alive += status == 200
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError):
            pass
    rss_after = rss_kb(a.pid)
    for _, w in opened:
        w.close()
    print(
        json.dumps(
            {
                "requested": a.n,
                "opened": len(opened),
                "alive_after_hold": alive,
                "failures": failures,
                "rss_kb": rss,
                "rss_after_second_request_kb": rss_after,
            }
        )
    )


def cmd_conns(a):
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(conns(a))


# ---------------------------------------------------------------------- startup
def cmd_startup(a):
    import http.client

    env = dict(os.environ)
    for k in list(env):
        if k.startswith("WARDEN_"):
            del env[k]
    for kv in a.env:
        k, _, v = kv.partition("=")
        env[k] = v
    argv = (["taskset", "-c", a.cpu] if a.cpu else []) + [a.bin, "serve"]
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=open(a.log, "ab"))
    ready = None
    try:
        while time.monotonic() - t0 < a.timeout:
            if proc.poll() is not None:
                break
            try:
                c = http.client.HTTPConnection(HOST, a.port, timeout=1)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    ready = time.monotonic() - t0
                    break
                c.close()
            except OSError:
                pass
            time.sleep(0.002)
        rss = rss_kb(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    print(json.dumps({"ready_ms": None if ready is None else round(ready * 1000, 1), "rss_kb": rss}))


# -------------------------------------------------------------------- criterion
def cmd_criterion(a):
    path = os.path.join(a.dir, a.group, a.name, "new", "estimates.json")
    try:
        with open(path) as f:
            est = json.load(f)
        print(est["mean"]["point_estimate"])
    except (OSError, KeyError, ValueError):
        print("null")


# ---------------------------------------------------------------------- hostile
def hostile_documents():
    """W15's attack: one document of each family that
    tests/api/graphql_cost/load.rs sends (nested spreads, wide fragments,
    too many fields or tokens, a thousand fragments or variables, a cycle,
    unknown fields, repeated introspection). Each is refused, or answered
    with errors, by the gate before it runs."""
    def fields(n, field):
        return " ".join(field(i) for i in range(n))
    nested = "query { ...G10 }\n" + "".join(
        f"fragment G{k} on Query {{ {f'...G{k - 1} ' * 5}}}\n" for k in range(1, 11)
    ) + "fragment G0 on Query { __typename }\n"
    return [
        nested,
        f"{{ {'...W ' * 40} }} fragment W on Query {{ {'__typename ' * 400} }}",
        f"{{ {'__typename ' * 3500} }}",
        f"{{ {'t ' * 6500} }}",
        "{ __typename } " + fields(1000, lambda i: f"fragment U{i} on Query {{ __typename }}"),
        f"query({fields(1000, lambda i: f'$v{i}: Int')}) {{ __typename }}",
        "query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }",
        f"{{ {fields(30, lambda i: f'nope{i}')} }}",
        f"{{ {fields(20, lambda i: f's{i}: __schema {{ types {{ name fields {{ name args {{ name }} }} }} }}')} }}",
    ]


def cmd_hostile(a):
    with open(a.out, "w") as f:
        for doc in hostile_documents():
            f.write(json.dumps({"query": doc}) + "\n")


# ---------------------------------------------------------------------- wrkjson
def cmd_wrkjson(a):
    with open(a.file) as f:
        for line in f:
            if line.startswith("BENCHJSON "):
                print(line[len("BENCHJSON "):].strip())
                return
    print("null")


def load_run(path):
    """One BENCHJSON run written by `wrkjson` (or `redisrtt`); None when the
    run produced nothing."""
    with open(path) as f:
        text = f.read().strip()
    return json.loads(text) if text and text != "null" else None


def cmd_median(a):
    runs = [run for run in map(load_run, a.files) if run is not None]
    if not runs:
        print("null")
        return
    out = {}
    for key in runs[0]:
        vals = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
        if vals:
            out[key] = statistics.median(vals)
    # Errors are summed over every repetition, not medianed.
    for key in ("requests", "good", "non200", "bad_body", "refused", "reused", "socket_errors", "timeouts"):
        if key in out:
            out[key] = sum(r.get(key, 0) for r in runs)
    out["repetitions"] = len(runs)
    print(json.dumps(out))


def cmd_paired(a):
    """Runs alternate A, B, A, B...: a drift of the machine over minutes
    moves both sides of a pair alike, so the median of the per-pair
    differences is steadier than the difference of two medians."""
    values = [(load_run(path) or {}).get(a.field) for path in a.files]
    pairs = [(values[i], values[i + 1]) for i in range(0, len(values) - 1, 2)]
    deltas = [b - x for x, b in pairs if isinstance(x, (int, float)) and isinstance(b, (int, float))]
    if not deltas:
        print("null")
        return
    print(json.dumps({"median": statistics.median(deltas), "deltas": deltas}))


# ------------------------------------------------------------------- fill (W12)
async def fill(a):
    emails = [line.split("\t")[0].strip() for line in open(a.logins) if line.strip()]
    if not emails:
        die("fill: no emails")
    requests = []
    for email in emails:
        body = json.dumps(
            {
                "query": "mutation($e: String!) { requestPasswordReset(email: $e) }",
                "variables": {"e": email},
            }
        ).encode()
        requests.append(
            (
                f"POST /graphql HTTP/1.1\r\nHost: {HOST}:{a.port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
    counts = {}
    next_i = 0
    deadline = time.monotonic() + a.timeout

    async def worker():
        nonlocal next_i
        conn = None
        while next_i < a.n and time.monotonic() < deadline:
            i = next_i
            next_i += 1
            try:
                if conn is None:
                    conn = await asyncio.wait_for(asyncio.open_connection(HOST, a.port), 10)
                status, body, close = await http_exchange(conn[0], conn[1], requests[i % len(requests)], 30)
                cls = classify(status, body)
                if close:
                    conn[1].close()
                    conn = None
            except (asyncio.TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                cls = "timeout_or_io"
                if conn is not None:
                    conn[1].close()
                conn = None
            counts[cls] = counts.get(cls, 0) + 1
        if conn is not None:
            conn[1].close()

    start = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(a.conns)))
    secs = time.monotonic() - start
    print(json.dumps({"sent": sum(counts.values()), "ok": counts.get("ok", 0), "classes": counts,
                      "seconds": round(secs, 3), "rps": round(sum(counts.values()) / max(secs, 1e-9), 1)}))


def cmd_fill(a):
    asyncio.run(fill(a))


# ----------------------------------------------------------------- outbox (W12)
def cmd_outbox(a):
    import sqlite3

    db = sqlite3.connect(a.db, timeout=30)
    try:
        waiting, sent, failed = db.execute(
            "SELECT"
            " COALESCE(SUM(CASE WHEN sent_at IS NULL AND failed_at IS NULL THEN 1 ELSE 0 END), 0),"
            " COALESCE(SUM(CASE WHEN sent_at IS NOT NULL THEN 1 ELSE 0 END), 0),"
            " COALESCE(SUM(CASE WHEN failed_at IS NOT NULL THEN 1 ELSE 0 END), 0)"
            " FROM mail_outbox"
        ).fetchone()
    finally:
        db.close()
    print(json.dumps({"waiting": waiting, "sent": sent, "failed": failed}))


# ---------------------------------------------------------------- explain (W14)
def plan_text(node):
    """The plan as one line: 'Node [index|relation] (rows, removed by
    filter) > child', siblings in brackets."""
    what = ("Parallel " if node.get("Parallel Aware") else "") + node.get("Node Type", "?")
    if node.get("Index Name"):
        what += f" {node['Index Name']}"
    elif node.get("Relation Name"):
        what += f" {node['Relation Name']}"
    extra = []
    if "Actual Rows" in node:
        extra.append(f"rows {node['Actual Rows']}")
    if node.get("Rows Removed by Filter"):
        extra.append(f"filtered out {node['Rows Removed by Filter']}")
    if extra:
        what += f" ({', '.join(extra)})"
    children = [plan_text(child) for child in node.get("Plans", [])]
    if len(children) == 1:
        what += " > " + children[0]
    elif children:
        what += " > [" + "; ".join(children) + "]"
    return what


def cmd_explain(a):
    """Reads the output of `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` (psql
    -At: the JSON document alone) and prints {"summary": "...", "seq_scan":
    bool, "execution_ms": float, "plan": [...]} on one line."""
    with open(a.file) as f:
        text = f.read().strip()
    try:
        doc = json.loads(text)
    except ValueError:
        print(json.dumps({"summary": "no plan", "seq_scan": None}))
        return
    top = doc[0] if isinstance(doc, list) else doc
    plan = top["Plan"]
    ms = top.get("Execution Time")
    buffers = plan.get("Shared Hit Blocks", 0) + plan.get("Shared Read Blocks", 0)
    # A generic plan (a prepared statement planned without its values)
    # keeps the parameters in its conditions.
    generic = bool(re.search(r"\$[0-9]", json.dumps(plan)))
    summary = plan_text(plan)
    if ms is not None:
        summary += f" [{ms:.2f} ms, {buffers} buffers{', generic plan' if generic else ''}]"
    print(json.dumps({"summary": summary, "seq_scan": "Seq Scan" in summary, "generic": generic,
                      "execution_ms": ms, "buffers": buffers, "plan": plan}))


# --------------------------------------------------------------------- redisrtt
def resp(*parts):
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        raw = part if isinstance(part, bytes) else str(part).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


class RespReader:
    """Just enough RESP2 to read the replies of SCRIPT LOAD and EVALSHA."""

    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                die("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def value(self):
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind == b"-":
            die(f"redis: {rest.decode(errors='replace')}")
        if kind in (b"+", b":"):
            return rest
        if kind == b"$":
            n = int(rest)
            while len(self.buf) < n + 2:
                self.buf += self.sock.recv(65536)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if kind == b"*":
            return [self.value() for _ in range(int(rest))]
        die(f"unexpected redis reply {line[:20]!r}")


def cmd_redisrtt(a):
    """One EVALSHA of the login's two-bucket GCRA script per tick, at a
    fixed rate, over one connection: the round trip a Warden login cannot
    avoid when its limits live in Redis."""
    with open(a.script_from) as f:
        found = re.search(r'const GCRA_SCRIPT: &str = r"(.*?)";', f.read(), re.S)
    if not found:
        die(f"no GCRA_SCRIPT in {a.script_from}")
    sock = socket.create_connection((HOST, a.port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = RespReader(sock)
    sock.sendall(resp("SCRIPT", "LOAD", found.group(1)))
    sha = reader.value()
    prefix = f"benchrtt{os.getpid()}"
    lat, interval = [], 1.0 / a.rate
    start = time.perf_counter()
    tick, i = start, 0
    while time.perf_counter() - start < a.secs:
        now = time.perf_counter()
        if now < tick:
            time.sleep(tick - now)
        tick += interval
        i += 1
        # Generous buckets (1 µs apart, 1 s of burst): every call is allowed
        # and writes both keys, as a login's does.
        msg = resp("EVALSHA", sha, 2, f"{prefix}:a:{i % 64}", f"{prefix}:b:{i % 64}", 1000, 10**9, 1000, 10**9)
        t0 = time.perf_counter()
        sock.sendall(msg)
        reader.value()
        lat.append((time.perf_counter() - t0) * 1e6)
    sock.close()
    if not lat:
        print("null")
        return
    print(json.dumps({"calls": len(lat), "p50_us": round(pct(lat, 0.50), 1),
                      "p90_us": round(pct(lat, 0.90), 1), "p99_us": round(pct(lat, 0.99), 1)}))


def cmd_redisstat(a):
    """Redis's own account of its work so far: the CPU time of the server
    process and the calls and time of EVALSHA (INFO's counters, so two
    readings bracket a window without resetting anyone's statistics)."""
    sock = socket.create_connection((HOST, a.port), timeout=5)
    reader = RespReader(sock)
    sock.sendall(resp("INFO", "cpu") + resp("INFO", "commandstats"))
    info = (reader.value() + b"\n" + reader.value()).decode(errors="replace")
    sock.close()
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    cpu = float(fields.get("used_cpu_user", 0)) + float(fields.get("used_cpu_sys", 0))
    stats = dict(kv.split("=", 1) for kv in fields.get("cmdstat_evalsha", "").split(",") if "=" in kv)
    print(json.dumps({"cpu_us": round(cpu * 1e6), "evalsha_calls": int(stats.get("calls", 0)),
                      "evalsha_us": int(stats.get("usec", 0))}))


# ---------------------------------------------------------------------- get/calc
def cmd_get(a):
    try:
        v = json.loads(a.json)
    except ValueError:
        return
    for part in a.path.split("."):
        if not isinstance(v, dict) or part not in v:
            return
        v = v[part]
    if v is None:
        return
    print(json.dumps(v) if isinstance(v, (dict, list)) else v)


def cmd_calc(a):
    try:
        v = eval(a.expr, {"__builtins__": {}}, {"min": min, "max": max, "round": round})  # noqa: S307
    except (ZeroDivisionError, SyntaxError, TypeError, NameError):
        return
    print(round(v, 6) if isinstance(v, float) else v)


# -------------------------------------------------------------------------- row
def num(v):
    if v in (None, "", "null", "None"):
        return None
    try:
        return float(v)
    except ValueError:
        return None


def cmd_row(a):
    value, limit = num(a.value), num(a.limit)
    ratio = value / limit if value is not None and limit not in (None, 0) else None
    result = "-"
    if a.min_ratio is not None:
        result = "n/a" if ratio is None else ("pass" if ratio >= a.min_ratio else "FAIL")
    elif a.max_ratio is not None:
        result = "n/a" if ratio is None else ("pass" if ratio <= a.max_ratio else "FAIL")
        if result == "FAIL" and a.max_value is not None and value is not None and value <= a.max_value:
            # Under the absolute floor (a latency of a few hundred µs whose
            # ratio is noise), the row passes: said in the note.
            result = "pass"
            a.note = f"{a.note}; " if a.note else ""
            a.note += f"ratio over {a.max_ratio} but value <= {a.max_value:g} {a.unit}"
    elif a.max_value is not None:
        result = "n/a" if value is None else ("pass" if value <= a.max_value else "FAIL")
    elif a.kind == "limit":
        result = "limit" if value is not None else "n/a"
    notes = [a.note] if a.note else []
    total, errors = num(a.total), num(a.errors)
    if errors is not None and total:
        rate = errors / total
        if errors:
            notes.append(f"errors {int(errors)}/{int(total)}")
        if rate > 0.001 and not a.errors_expected:
            result = "INVALID"
        elif errors and a.zero_errors and result == "pass":
            result = "FAIL"
    elif a.total is not None and not total and result not in ("-",):
        result = "INVALID"
        notes.append("no requests completed")
    if a.result:
        result = a.result
    late = num(a.late)
    if late and total and late / total > 0.01:
        notes.append(f"rate not held ({int(late)} late)")
    row = {
        "id": a.id,
        "layout": a.layout,
        "what": a.what,
        "value": value,
        "unit": a.unit,
        "limit": limit,
        "limit_id": a.limit_id,
        "limit_unit": a.limit_unit or a.unit,
        "ratio": ratio,
        "goal": a.goal,
        "result": result,
        "note": "; ".join(notes),
    }
    if a.detail:
        try:
            row["detail"] = json.loads(a.detail)
        except ValueError:
            row["detail"] = a.detail
    with open(a.out, "a") as f:
        f.write(json.dumps(row) + "\n")


# ----------------------------------------------------------------------- report
def fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if abs(v) >= 1000:
        s = f"{v:,.0f}"
    elif abs(v) >= 10:
        s = f"{v:.1f}"
    else:
        s = f"{v:.3g}"
    return f"{s} {unit}".strip()


def cmd_report(a):
    rows = []
    with open(a.infile) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    header = ["workload", "layout", "figure", "limit", "ratio", "goal", "result", "note"]
    table = []
    for r in rows:
        table.append(
            [
                r["id"],
                r.get("layout", "-"),
                fmt(r.get("value"), r.get("unit", "")),
                fmt(r.get("limit"), r.get("limit_unit", r.get("unit", ""))),
                "-" if r.get("ratio") is None else f"{r['ratio']:.2f}",
                r.get("goal", "-"),
                r.get("result", "-"),
                r.get("note", ""),
            ]
        )
    widths = [max(len(str(row[i])) for row in table + [header]) for i in range(len(header) - 1)]
    line = lambda row: "  ".join(str(c).ljust(w) for c, w in zip(row, widths)) + "  " + str(row[-1])  # noqa: E731
    print(line(header))
    print("  ".join("-" * w for w in widths) + "  ----")
    for row in table:
        print(line(row))
    meta = json.loads(a.meta) if a.meta else {}
    with open(a.out, "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=2)
        f.write("\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("register")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--n", type=int, required=True)
    s.add_argument("--prefix", required=True)
    s.add_argument("--password", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--parallel", type=int, default=8)
    s.add_argument("--timeout", type=float, default=300)
    s.set_defaults(fn=cmd_register)

    s = sub.add_parser("apikeys")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--tokens", required=True, help="access tokens, one per line")
    s.add_argument("--scopes", default="USER", help="comma-separated ApiKeyScope names")
    s.add_argument("--name", default="bench")
    s.add_argument("--out", required=True)
    s.add_argument("--parallel", type=int, default=8)
    s.set_defaults(fn=cmd_apikeys)

    s = sub.add_parser("login")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--email", required=True)
    s.add_argument("--password", required=True)
    s.set_defaults(fn=cmd_login)

    s = sub.add_parser("logins")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--emails", required=True)
    s.add_argument("--password", required=True)
    s.add_argument("--times", type=int, default=1)
    s.add_argument("--parallel", type=int, default=8)
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_logins)

    s = sub.add_parser("forge")
    s.add_argument("--in", dest="infile", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_forge)

    s = sub.add_parser("openloop")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--rate", type=float, required=True)
    s.add_argument("--duration", type=float, required=True)
    s.add_argument("--logins", required=True)
    s.add_argument("--password", required=True)
    s.add_argument("--timeout", type=float, default=20)
    s.add_argument("--max-inflight", type=int, default=2000)
    s.set_defaults(fn=cmd_openloop)

    s = sub.add_parser("conns")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--n", type=int, required=True)
    s.add_argument("--token", required=True)
    s.add_argument("--hold", type=float, default=2)
    s.add_argument("--timeout", type=float, default=120)
    s.set_defaults(fn=cmd_conns)

    s = sub.add_parser("startup")
    s.add_argument("--bin", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--env", action="append", default=[])
    s.add_argument("--cpu", default="")
    s.add_argument("--log", default="/dev/null")
    s.add_argument("--timeout", type=float, default=30)
    s.set_defaults(fn=cmd_startup)

    s = sub.add_parser("criterion")
    s.add_argument("--dir", required=True)
    s.add_argument("--group", required=True)
    s.add_argument("--name", required=True)
    s.set_defaults(fn=cmd_criterion)

    s = sub.add_parser("wrkjson")
    s.add_argument("file")
    s.set_defaults(fn=cmd_wrkjson)

    s = sub.add_parser("hostile")
    s.add_argument("--out", required=True, help="one JSON body per line")
    s.set_defaults(fn=cmd_hostile)

    s = sub.add_parser("median")
    s.add_argument("files", nargs="+")
    s.set_defaults(fn=cmd_median)

    s = sub.add_parser("paired")
    s.add_argument("--field", required=True)
    s.add_argument("files", nargs="+", help="A1 B1 A2 B2 ...")
    s.set_defaults(fn=cmd_paired)

    s = sub.add_parser("redisrtt")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--rate", type=float, required=True)
    s.add_argument("--secs", type=float, required=True)
    s.add_argument("--script-from", required=True, help="src/auth/limiter/gcra.rs")
    s.set_defaults(fn=cmd_redisrtt)

    s = sub.add_parser("fill")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--n", type=int, required=True)
    s.add_argument("--logins", required=True)
    s.add_argument("--conns", type=int, default=16)
    s.add_argument("--timeout", type=float, default=600)
    s.set_defaults(fn=cmd_fill)

    s = sub.add_parser("outbox")
    s.add_argument("--db", required=True, help="the SQLite file")
    s.set_defaults(fn=cmd_outbox)

    s = sub.add_parser("explain")
    s.add_argument("file", help="psql -At output of EXPLAIN (ANALYZE, FORMAT JSON)")
    s.set_defaults(fn=cmd_explain)

    s = sub.add_parser("redisstat")
    s.add_argument("--port", type=int, required=True)
    s.set_defaults(fn=cmd_redisstat)

    s = sub.add_parser("get")
    s.add_argument("json")
    s.add_argument("path")
    s.set_defaults(fn=cmd_get)

    s = sub.add_parser("calc")
    s.add_argument("expr")
    s.set_defaults(fn=cmd_calc)

    s = sub.add_parser("row")
    s.add_argument("--out", required=True)
    s.add_argument("--id", required=True)
    s.add_argument("--layout", default="-")
    s.add_argument("--what", default="")
    s.add_argument("--kind", default="workload")
    s.add_argument("--value")
    s.add_argument("--unit", default="")
    s.add_argument("--limit")
    s.add_argument("--limit-id", default="")
    s.add_argument("--limit-unit", default="")
    s.add_argument("--goal", default="-")
    s.add_argument("--min-ratio", type=float)
    s.add_argument("--max-value", type=float)
    s.add_argument("--max-ratio", type=float, help="value / limit at most this (with --max-value: an absolute floor under which the row passes)")
    s.add_argument("--errors")
    s.add_argument("--total")
    s.add_argument("--late")
    s.add_argument("--errors-expected", action="store_true")
    s.add_argument("--result", default="")
    s.add_argument("--zero-errors", action="store_true", help="any error fails the row")
    s.add_argument("--note", default="")
    s.add_argument("--detail", default="")
    s.set_defaults(fn=cmd_row)

    s = sub.add_parser("report")
    s.add_argument("--in", dest="infile", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--meta", default="")
    s.set_defaults(fn=cmd_report)

    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
