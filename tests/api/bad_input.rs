//! Extreme and malformed arguments, every operation: each answers
//! `BAD_USER_INPUT` naming the field (or the operation's documented answer),
//! never `INTERNAL`, and stores nothing — on SQLite and on Postgres.

use entity::{session, user};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{json, Value};

use crate::helpers::{code, email, s, spawn_app, TestApp, PASSWORD};

const LOG: &str = "query($first: Int, $after: String, $filter: AuditLogFilter) {
  auditLog(first: $first, after: $after, filter: $filter) { edges { cursor } }
}";
const REGISTER: &str =
    "mutation($i: RegisterInput!) { register(input: $i) { accessToken refreshToken } }";
const LOGIN: &str = "mutation($i: LoginInput!) { login(input: $i) { accessToken } }";
const REFRESH: &str = "mutation($t: String) { refresh(refreshToken: $t) { accessToken } }";
const LOGOUT: &str = "mutation($t: String) { logout(refreshToken: $t) }";
const REVOKE: &str = "mutation($id: ID!) { revokeSession(id: $id) }";
const CHANGE: &str =
    "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }";

/// What a case must answer.
enum Expect {
    /// An error with this code, and this `field` when given.
    Error(&'static str, Option<&'static str>),
    /// Data, no errors.
    Ok,
}

struct Case {
    name: &'static str,
    query: &'static str,
    vars: Value,
    /// Sent with the account's access token.
    authed: bool,
    expect: Expect,
}

fn bad(field: &'static str) -> Expect {
    Expect::Error("BAD_USER_INPUT", Some(field))
}

fn case(
    name: &'static str,
    query: &'static str,
    vars: Value,
    authed: bool,
    expect: Expect,
) -> Case {
    Case {
        name,
        query,
        vars,
        authed,
        expect,
    }
}

fn filter(f: Value) -> Value {
    json!({ "filter": f })
}

fn cases() -> Vec<Case> {
    let long = "a".repeat(60_000);
    let nul = "a\u{0}b";
    let b64 = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    };
    let mut cases = Vec::new();
    // DateTime: far past and future, inside chrono's range but outside
    // what the databases store and compare correctly.
    for (name, field, value) in [
        ("since far past", "since", "-262143-01-01T00:00:00Z"),
        ("since far future", "since", "+262142-12-31T23:59:59Z"),
        ("since before 4713 BC", "since", "-5000-01-01T00:00:00Z"),
        ("since year 0", "since", "0000-01-01T00:00:00Z"),
        ("since year 10000", "since", "+10000-01-01T00:00:00Z"),
        ("until far past", "until", "-262143-01-01T00:00:00Z"),
        ("until far future", "until", "+262142-12-31T23:59:59Z"),
    ] {
        cases.push(case(
            name,
            LOG,
            filter(json!({ field: value })),
            true,
            bad(field),
        ));
    }
    cases.push(case(
        "since at the edge of the range",
        LOG,
        filter(json!({ "since": "0001-01-01T00:00:00Z", "until": "9999-12-31T23:59:59Z" })),
        true,
        Expect::Ok,
    ));
    // Int.
    for first in [-1_i64, i64::from(i32::MIN)] {
        cases.push(case(
            "first negative",
            LOG,
            json!({ "first": first }),
            true,
            bad("first"),
        ));
    }
    cases.push(case(
        "first max",
        LOG,
        json!({ "first": i32::MAX }),
        true,
        Expect::Ok,
    ));
    // Values the GraphQL layer refuses before any resolver logic.
    cases.extend([
        case(
            "first past 32 bits",
            LOG,
            json!({ "first": 99_999_999_999_i64 }),
            true,
            bad("first"),
        ),
        case(
            "first fractional",
            LOG,
            json!({ "first": 1.5 }),
            true,
            bad("first"),
        ),
        case(
            "first a string",
            LOG,
            json!({ "first": "ten" }),
            true,
            bad("first"),
        ),
        case(
            "since not a time",
            LOG,
            filter(json!({ "since": "garbage" })),
            true,
            bad("filter"),
        ),
        case(
            "kinds unknown",
            LOG,
            filter(json!({ "kinds": ["NOPE"] })),
            true,
            bad("filter"),
        ),
        case(
            "literal first past 32 bits",
            "{ auditLog(first: 99999999999) { edges { cursor } } }",
            json!({}),
            true,
            bad("first"),
        ),
    ]);
    // Cursors.
    for (name, after) in [
        ("after garbage", "!!!".to_owned()),
        ("after empty", String::new()),
        ("after NUL", nul.to_owned()),
        ("after long", long.clone()),
        ("after negative id", b64("audit:-1")),
        ("after huge id", b64("audit:99999999999999999999999")),
        ("after NUL inside", b64("audit:1\u{0}")),
    ] {
        let expect = if name == "after negative id" {
            Expect::Ok
        } else {
            bad("after")
        };
        cases.push(case(name, LOG, json!({ "after": after }), true, expect));
    }
    // IDs.
    for (name, id) in [
        ("userId not a uuid", "nope"),
        ("userId NUL", nul),
        ("userId long", long.as_str()),
    ] {
        cases.push(case(
            name,
            LOG,
            filter(json!({ "userId": id })),
            true,
            bad("userId"),
        ));
    }
    for id in ["nope", nul, long.as_str()] {
        let vars = json!({ "id": id });
        cases.push(case("revokeSession odd id", REVOKE, vars, true, Expect::Ok));
    }
    // Strings with NUL bytes, control characters and huge lengths.
    let reg = |e: &str, p: &str, u: Option<&str>| json!({ "i": { "email": e, "password": p, "username": u } });
    let good = email();
    cases.extend([
        case(
            "register email NUL",
            REGISTER,
            reg(&format!("a\u{0}{good}"), PASSWORD, None),
            false,
            bad("email"),
        ),
        case(
            "register email long",
            REGISTER,
            reg(&format!("{long}@example.com"), PASSWORD, None),
            false,
            bad("email"),
        ),
        case(
            "register password NUL",
            REGISTER,
            reg(&good, "correct horse\u{0}battery", None),
            false,
            bad("password"),
        ),
        case(
            "register password long",
            REGISTER,
            reg(&good, &long, None),
            false,
            bad("password"),
        ),
        case(
            "register username NUL",
            REGISTER,
            reg(&good, PASSWORD, Some(nul)),
            false,
            bad("username"),
        ),
        case(
            "register username long",
            REGISTER,
            reg(&good, PASSWORD, Some(&long)),
            false,
            bad("username"),
        ),
    ]);
    let login = |e: &str, p: &str| json!({ "i": { "email": e, "password": p } });
    cases.extend([
        case(
            "login email NUL",
            LOGIN,
            login(&format!("x\u{0}{good}"), PASSWORD),
            false,
            bad("email"),
        ),
        case(
            "login email NUL in domain",
            LOGIN,
            login("x@exa\u{0}mple.com", PASSWORD),
            false,
            bad("email"),
        ),
        case(
            "login email long",
            LOGIN,
            login(&format!("{long}@example.com"), PASSWORD),
            false,
            bad("email"),
        ),
        case(
            "login password NUL",
            LOGIN,
            login(&good, "pass\u{0}word!!"),
            false,
            Expect::Error("INVALID_CREDENTIALS", None),
        ),
        case(
            "login password long",
            LOGIN,
            login(&good, &long),
            false,
            bad("password"),
        ),
    ]);
    for t in [nul, long.as_str(), "\u{0}\u{0}\u{0}"] {
        cases.push(case(
            "refresh odd token",
            REFRESH,
            json!({ "t": t }),
            false,
            Expect::Error("INVALID_REFRESH_TOKEN", None),
        ));
        cases.push(case(
            "logout odd token",
            LOGOUT,
            json!({ "t": t }),
            false,
            Expect::Ok,
        ));
    }
    cases.extend([
        case(
            "changePassword current NUL",
            CHANGE,
            json!({ "c": nul, "n": PASSWORD }),
            true,
            Expect::Error("INVALID_CREDENTIALS", None),
        ),
        case(
            "changePassword new NUL",
            CHANGE,
            json!({ "c": PASSWORD, "n": "new password\u{0}here" }),
            true,
            bad("newPassword"),
        ),
        case(
            "changePassword new long",
            CHANGE,
            json!({ "c": PASSWORD, "n": long }),
            true,
            bad("newPassword"),
        ),
    ]);
    cases
}

async fn count(app: &TestApp) -> (u64, u64) {
    let db = app.state.db.read();
    (
        user::Entity::find().count(db).await.unwrap(),
        session::Entity::find().count(db).await.unwrap(),
    )
}

#[tokio::test]
async fn extreme_arguments_are_bad_user_input_never_internal_and_store_nothing() {
    let app = spawn_app().await;
    let me = app.register(&email()).await;
    let token = s(&me, "accessToken").to_owned();
    let before = count(&app).await;
    let mut wrong = Vec::new();
    let all = cases();
    for case in &all {
        let token = case.authed.then_some(token.as_str());
        // 200 or, for a document that fails validation, 400 (the
        // transport's rule); the body is what this test judges.
        let response = app.post(token, case.query, case.vars.clone()).await;
        let body: Value = response.json().await.unwrap();
        let field = body["errors"][0]["extensions"]["field"].as_str();
        let ok = match case.expect {
            Expect::Ok => body["errors"].is_null(),
            Expect::Error(want, want_field) => {
                code(&body) == Some(want) && want_field.is_none_or(|f| field == Some(f))
            }
        };
        if !ok {
            let shown: String = body.to_string().chars().take(300).collect();
            wrong.push(format!("{}: {shown}", case.name));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases answered wrongly:\n{}",
        wrong.len(),
        all.len(),
        wrong.join("\n")
    );
    assert_eq!(count(&app).await, before, "no user or session was stored");
}
