#!/usr/bin/env python3
"""Byte-for-byte check of warden-floor against a running Warden.

Both must serve the same database with the same HS256 secret:

    bench/floor/compare.py --warden 127.0.0.1:PORT --floor 127.0.0.1:PORT \
        --secret "$SECRET" (--sqlite FILE | --pg postgres://…)

Registers three accounts on Warden, then sends the very same `me` request
(bench/lua/me.lua's body) to both for: a valid token, a token minted here
for a live session, no token, a forged signature, a genuine expired token,
an unknown session, someone else's session, a session past its expiry
(set by SQL), a wrong audience, no `kid`, an
unknown role, a `Basic` header, an administrator (promoted by SQL), and the
first token after `logout`. Prints each case and exits 1 on any difference
in status, Content-Type or body. Standard library only.
"""

import argparse
import base64
import hashlib
import hmac
import json
import subprocess
import sqlite3
import sys
import time
import urllib.error
import urllib.request
import uuid

ME = b'{"query":"{ me { id email role } }"}'
REGISTER = "mutation($i: RegisterInput!) { register(input: $i) { accessToken refreshToken } }"


def post(addr, body, headers):
    req = urllib.request.Request(f"http://{addr}/graphql", data=body, method="POST")
    req.add_header("Content-Type", "application/json")
    for k, v in headers.items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers.get("Content-Type"), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type"), err.read()


def gql(addr, query, variables=None, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    _, _, body = post(addr, json.dumps({"query": query, "variables": variables or {}}).encode(), headers)
    return json.loads(body)


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mint(secret, claims, header=None):
    kid = "hs256-" + hashlib.sha256(secret.encode()).hexdigest()[:16]
    head = header if header is not None else {"typ": "JWT", "alg": "HS256", "kid": kid}
    signing = f"{b64(json.dumps(head).encode())}.{b64(json.dumps(claims).encode())}"
    sig = hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{b64(sig)}"


def claims_of(token):
    return json.loads(unb64(token.split(".")[1]))


def forge(token):
    head, payload, sig = token.split(".")
    raw = bytearray(unb64(sig))
    raw[0] ^= 1
    return f"{head}.{payload}.{b64(bytes(raw))}"


def sql(args, sqlite_statement, pg_statement):
    if args.sqlite:
        with sqlite3.connect(args.sqlite) as db:
            db.execute(sqlite_statement)
    else:
        subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", args.pg, "-c", pg_statement], check=True)


def promote(args, email):
    statement = f"UPDATE users SET role = 'ADMIN' WHERE email = '{email}'"
    sql(args, statement, statement)


def expire_sessions(args, email):
    """Moves the account's sessions' expiry into the past, in the format
    each store already holds (SQLite: sqlx's text, only the year changed)."""
    owner = f"(SELECT id FROM users WHERE email = '{email}')"
    sql(args,
        f"UPDATE sessions SET expires_at = '2020' || substr(expires_at, 5) WHERE user_id = {owner}",
        f"UPDATE sessions SET expires_at = now() - interval '1 hour' WHERE user_id = {owner}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--warden", required=True)
    p.add_argument("--floor", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--sqlite")
    p.add_argument("--pg")
    args = p.parse_args()
    stamp = int(time.time())
    accounts = []
    for n in range(3):
        email = f"floor{stamp}-{n}@compare.example.com"
        body = gql(args.warden, REGISTER, {"i": {"email": email, "password": "correct horse battery staple 1"}})
        data = (body.get("data") or {}).get("register")
        if not data:
            sys.exit(f"register {email}: {body}")
        accounts.append((email, data["accessToken"]))
    (_, token), (email_b, token_b), (email_c, token_c) = accounts
    c = claims_of(token)
    cb = claims_of(token_b)
    now = int(time.time())

    def minted(**over):
        claims = dict(cb, iat=now, exp=now + 600, jti=str(uuid.uuid4()))
        claims.update(over)
        return mint(args.secret, claims)

    cases = [
        ("valid token", {"Authorization": f"Bearer {token}"}),
        ("minted here, live session", {"Authorization": f"Bearer {minted()}"}),
        ("lower-case bearer", {"Authorization": f"bearer {token}"}),
        ("no token", {}),
        ("forged signature", {"Authorization": f"Bearer {forge(token)}"}),
        ("expired, genuine", {"Authorization": f"Bearer {minted(iat=now - 7200, exp=now - 3600)}"}),
        ("issued in the future", {"Authorization": f"Bearer {minted(iat=now + 3600)}"}),
        ("unknown session", {"Authorization": f"Bearer {minted(sid=str(uuid.uuid4()))}"}),
        ("someone else's session", {"Authorization": f"Bearer {minted(sid=c['sid'])}"}),
        ("wrong audience", {"Authorization": f"Bearer {minted(aud='elsewhere')}"}),
        ("no kid", {"Authorization": "Bearer " + mint(args.secret, dict(cb, jti=str(uuid.uuid4())),
                                                      {"typ": "JWT", "alg": "HS256"})}),
        ("unknown role", {"Authorization": f"Bearer {minted(role='ROOT')}"}),
        ("Basic header", {"Authorization": "Basic Zm9vOmJhcg=="}),
        ("empty bearer", {"Authorization": "Bearer "}),
    ]
    failures = 0

    def check(name, headers):
        nonlocal failures
        w = post(args.warden, ME, headers)
        f = post(args.floor, ME, headers)
        same = w[0] == f[0] and w[1] == f[1] and w[2] == f[2]
        failures += not same
        print(f"{'same' if same else 'DIFF'}  {name}: {w[0]} {w[2].decode()}")
        if not same:
            print(f"      floor: {f[0]} {f[2].decode()}")
        if w[1] != f[1]:
            print(f"      content-type: warden {w[1]!r}, floor {f[1]!r}")

    for name, headers in cases:
        check(name, headers)
    promote(args, email_b)
    expire_sessions(args, email_c)
    check("session past its expires_at (set in the database)", {"Authorization": f"Bearer {token_c}"})
    check("administrator (role promoted in the database)", {"Authorization": f"Bearer {token_b}"})
    out = gql(args.warden, "mutation { logout }", token=token)
    if out.get("data", {}).get("logout") is not True:
        sys.exit(f"logout: {out}")
    check("after logout (dead session)", {"Authorization": f"Bearer {token}"})
    print(f"{len(cases) + 3 - failures} same, {failures} different")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
