//! The admin reads: the `users` connection and `user(id)`.
//!
//! `users` pages by account id (UUIDv7, so roughly by creation), which is
//! stable under inserts and deletes: a cursor is the last id seen, and the
//! next page is the ids after it. `search` is a prefix of the stored
//! (lowercase) email or of the username, case-insensitively; on Postgres
//! both prefixes are index scans (`text_pattern_ops`, see the migration
//! `m20261203_000002_admin`).

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use entity::{passkey, session, totp_factor, user};
use sea_orm::{
    sea_query::{Expr, ExprTrait, Func, LikeExpr},
    AccessMode, ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, IsolationLevel,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use uuid::Uuid;

use super::Admin;
use serde_json::json;

use crate::{
    domain::{AuditEventKind, Role},
    error::AppError,
    meta::RequestMeta,
    services::{
        accounts::escape_like,
        audit::{self, Event},
        audit_log::{DEFAULT_PAGE, MAX_PAGE},
        mfa,
    },
    state::AppState,
};

/// The longest `search`, in bytes (an email's longest).
const MAX_SEARCH_BYTES: usize = 254;

/// `UserFilter`: every given field must match.
#[derive(Debug, Default, Clone)]
pub struct UserFilter {
    /// A prefix of the email or the username, any case.
    pub search: Option<String>,
    /// Only this role.
    pub role: Option<Role>,
    /// Only disabled (true) or enabled (false) accounts.
    pub disabled: Option<bool>,
    /// Only verified (true) or unverified (false) addresses.
    pub email_verified: Option<bool>,
    /// Only accounts with (true) or without (false) a second factor.
    pub mfa_enabled: Option<bool>,
}

/// One page of `users`.
pub struct UserPage {
    /// The accounts, by id, each with its cursor.
    pub users: Vec<(String, user::Model)>,
    /// Whether more match after the last.
    pub has_next_page: bool,
}

/// `user(id)`: an account with what it holds.
pub struct UserDetail {
    /// The account.
    pub user: user::Model,
    /// Its live sessions.
    pub active_sessions: u64,
    /// Its passkeys.
    pub passkeys: u64,
    /// Whether a confirmed authenticator app is on.
    pub totp: bool,
    /// Its unused recovery codes.
    pub recovery_codes_left: u64,
}

/// `users`: a page of accounts matching `filter`, after `after`.
pub async fn list(
    state: &AppState,
    meta: &RequestMeta,
    admin: &Admin,
    first: Option<i32>,
    after: Option<&str>,
    filter: &UserFilter,
) -> Result<UserPage, AppError> {
    let first = first.unwrap_or(DEFAULT_PAGE);
    if first < 0 {
        return Err(AppError::bad_input(
            "first",
            "first must be between 0 and 200",
        ));
    }
    let limit = u64::try_from(Ord::min(first, MAX_PAGE)).unwrap_or(0);
    let mut select = user::Entity::find();
    let after = after.map(decode_cursor).transpose()?;
    if let Some(after) = after {
        select = select.filter(user::Column::Id.gt(after));
    }
    let mut search = None;
    if let Some(prefix) = parse_search(filter.search.as_deref())? {
        let pattern = format!("{}%", escape_like(&prefix));
        let lower_username = || Expr::expr(Func::lower(Expr::col(user::Column::Username)));
        let mut email = Condition::all()
            .add(Expr::col(user::Column::Email).like(LikeExpr::new(pattern.clone()).escape('\\')));
        let mut username =
            Condition::all().add(lower_username().like(LikeExpr::new(pattern).escape('\\')));
        // SQLite's LIKE is case-insensitive and its indexes are binary, so
        // it never walks an index for a LIKE: it read the whole table. The
        // same prefix as a range of the binary order (UTF-8 bytes compare
        // as code points) walks the email's unique index and the
        // `lower(username)` index; the LIKE stays, for its exact meaning.
        if state.db.is_sqlite() {
            if let Some(next) = prefix_successor(&prefix) {
                email = email
                    .add(user::Column::Email.gte(prefix.clone()))
                    .add(user::Column::Email.lt(next.clone()));
                username = username
                    .add(lower_username().gte(prefix.clone()))
                    .add(lower_username().lt(next));
            }
        }
        select = select.filter(Condition::any().add(email.clone()).add(username.clone()));
        search = Some(Search {
            by: [email, username],
            after,
            filtered: filter.role.is_some()
                || filter.disabled.is_some()
                || filter.email_verified.is_some()
                || filter.mfa_enabled.is_some(),
        });
    }
    if let Some(role) = filter.role {
        // The role is written into the statement, not bound: with `role = $1`
        // Postgres switches a prepared statement to a generic plan after five
        // runs, and a generic plan cannot tell the few administrators from
        // the many users, so it walked the primary key to the end (139-191 ms
        // over 1M accounts for three administrators, against 0.06 ms through
        // `idx_users_role_id`). A role is one of two fixed names.
        select =
            select.filter(Expr::col(user::Column::Role).eq(Expr::Constant(role.as_str().into())));
    }
    select = match filter.disabled {
        Some(true) => select.filter(user::Column::DisabledAt.is_not_null()),
        Some(false) => select.filter(user::Column::DisabledAt.is_null()),
        None => select,
    };
    select = match filter.email_verified {
        Some(true) => select.filter(user::Column::EmailVerifiedAt.is_not_null()),
        Some(false) => select.filter(user::Column::EmailVerifiedAt.is_null()),
        None => select,
    };
    select = match filter.mfa_enabled {
        Some(true) => select.filter(user::Column::MfaEnabledAt.is_not_null()),
        Some(false) => select.filter(user::Column::MfaEnabledAt.is_null()),
        None => select,
    };
    let read = state.db.read();
    let mut rows = match search {
        None => fetch(read, select, None, limit).await?,
        // A search is several statements (the indexes are asked, then the
        // page is read): one read-only transaction, so that they all see the
        // same accounts. (A page read by the ids the indexes gave would
        // otherwise come back short when an account went in between, and
        // end the paging early.)
        Some(search) => {
            let txn = if state.db.is_sqlite() {
                read.begin().await?
            } else {
                let txn = read
                    .begin_with_config(
                        Some(IsolationLevel::RepeatableRead),
                        Some(AccessMode::ReadOnly),
                    )
                    .await?;
                // A prefix search must be planned for its prefix each time:
                // after five runs Postgres may switch a prepared statement
                // to a generic plan, which cannot use the prefix indexes
                // (`LIKE $1`) and reads the whole table (250-490 ms over 1M
                // accounts in bench W14).
                txn.execute_unprepared("SET LOCAL plan_cache_mode = force_custom_plan")
                    .await?;
                txn
            };
            let rows = fetch(&txn, select, Some(search), limit).await?;
            txn.commit().await?;
            rows
        }
    };
    let has_next_page = rows.len() as u64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    viewed(
        state,
        meta,
        admin,
        json!({ "operation": "users", "returned": rows.len() }),
    )
    .await?;
    Ok(UserPage {
        users: rows.into_iter().map(|u| (encode_cursor(u.id), u)).collect(),
        has_next_page,
    })
}

/// A search, as [`probe`] needs it.
struct Search {
    /// The email's condition and the username's (the page matches either).
    by: [Condition; 2],
    /// The cursor: only ids after it.
    after: Option<Uuid>,
    /// Whether other filters (role, disabled, ...) narrow it too.
    filtered: bool,
}

/// The rows of a `users` page (`limit + 1`, to tell whether more follow).
async fn fetch(
    conn: &impl ConnectionTrait,
    select: sea_orm::Select<user::Entity>,
    search: Option<Search>,
    limit: u64,
) -> Result<Vec<user::Model>, AppError> {
    if let Some(search) = search {
        let found = match probe(conn, search, limit + 1).await? {
            Probe::Common => None,
            Probe::Ids(ids) => Some(by_ids(conn, ids).await?),
            Probe::Filtered => narrow_search(conn, select.clone(), limit + 1).await?,
        };
        if let Some(rows) = found {
            return Ok(rows);
        }
    }
    Ok(select
        .order_by_asc(user::Column::Id)
        .limit(limit + 1)
        .all(conn)
        .await?)
}

/// How many matches a search may have for the indexes to answer it.
const NARROW: u64 = 5_000;

/// What the search indexes said about a search.
enum Probe {
    /// The email or the username prefix alone matches more than
    /// [`NARROW`] accounts: a page is found quickly by walking the primary
    /// key in order, and reading every match would not be.
    Common,
    /// Few match, and nothing else filters: the page's ids (the first
    /// `take` after the cursor).
    Ids(Vec<Uuid>),
    /// Few match, but other filters need the rows: [`narrow_search`].
    Filtered,
}

/// Asks the two prefix indexes about `search`, reading them alone.
///
/// Each prefix is counted up to `NARROW + 1` entries of its own index:
/// about a millisecond for a common prefix over 1M accounts on Postgres.
/// When both are rare and nothing else filters, the indexes also give the
/// ids of their matches (both carry the id, and the username's the
/// username, see the migration `m20261204_000002`); the first `take` after
/// the cursor are the page, read by id. For 2,155 matches over 1M accounts
/// that took about 2 ms where reading the matching rows took 8 ms. (Asking for
/// `NARROW + 1` matching ids of the table instead read it: Postgres, which
/// expects the matches of a common prefix to be everywhere, scanned it to
/// the 5,001st, 16-40 ms.) On Postgres, sequential and bitmap scans are off
/// while the indexes are asked, so that the planner takes the index walks
/// that stop at their limits whatever it guesses the counts to be.
async fn probe(conn: &impl ConnectionTrait, search: Search, take: u64) -> Result<Probe, AppError> {
    let postgres = conn.get_database_backend() == DbBackend::Postgres;
    if postgres {
        conn.execute_unprepared(
            "SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off",
        )
        .await?;
    }
    // On an error the transaction is over: that error is the answer.
    let probe = ask_indexes(conn, search, take).await?;
    if postgres {
        conn.execute_unprepared(
            "SET LOCAL enable_seqscan TO DEFAULT; SET LOCAL enable_bitmapscan TO DEFAULT",
        )
        .await?;
    }
    Ok(probe)
}

/// [`probe`]'s statements.
///
/// Each index is counted first, up to `NARROW + 1` (one row back): a
/// common prefix ends there. (Asking Postgres for the ids at once, the list
/// being the count, took the common prefix of bench W14 from 4.3 to 8.5 ms
/// p99: 5,001 ids to send.) When both are rare, SQLite sorts and cuts the
/// page itself: sqlx hands each row from SQLite's thread to the executor on
/// its own, and for the 2,850 matches of a middling prefix over 1M accounts
/// those hand-offs took most of the search (`perf`: 40 % of the core in
/// context switches). Postgres sends every match's id, sorted and cut here.
/// With other filters [`narrow_search`] reads the filtered ids.
async fn ask_indexes(
    conn: &impl ConnectionTrait,
    search: Search,
    take: u64,
) -> Result<Probe, AppError> {
    use sea_orm::sea_query::{Alias, Query, UnionType};
    let backend = conn.get_database_backend();
    let postgres = backend == DbBackend::Postgres;
    for condition in &search.by {
        let matches = Query::select()
            .expr(Expr::val(1))
            .from(user::Entity)
            .cond_where(condition.clone())
            .limit(NARROW + 1)
            .to_owned();
        let count = Query::select()
            .expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
            .from_subquery(matches, Alias::new("m"))
            .to_owned();
        let n: i64 = match conn.query_one_raw(backend.build(&count)).await? {
            Some(row) => row.try_get("", "n")?,
            None => 0,
        };
        if u64::try_from(n).unwrap_or(0) > NARROW {
            return Ok(Probe::Common);
        }
    }
    if search.filtered {
        return Ok(Probe::Filtered);
    }
    if !postgres {
        // SQLite: both rare. The union of the two indexes' matches (each
        // walk index-only, at most NARROW entries as just counted), after
        // the cursor, in id order, the first `take`.
        let [email, username] = search.by;
        let by = |condition: Condition| {
            Query::select()
                .column((user::Entity, user::Column::Id))
                .from(user::Entity)
                .cond_where(condition)
                .to_owned()
        };
        let mut both = by(email);
        both.union(UnionType::Distinct, by(username));
        let id = || Expr::col((Alias::new("m"), Alias::new("id")));
        let mut page = Query::select()
            .expr_as(id(), Alias::new("id"))
            .from_subquery(both, Alias::new("m"))
            .order_by_expr(id(), sea_orm::Order::Asc)
            .limit(take)
            .to_owned();
        if let Some(after) = search.after {
            page.and_where(id().gt(after));
        }
        let mut ids = Vec::new();
        for row in conn.query_all_raw(backend.build(&page)).await? {
            ids.push(row.try_get::<Uuid>("", "id")?);
        }
        return Ok(Probe::Ids(ids));
    }
    // Postgres: every match of each prefix (at most NARROW, as just
    // counted in the same snapshot), in no order and without the cursor: a
    // statement with `ORDER BY id` or `id > $cursor` can be planned as a
    // walk of the primary key that filters, which for a rare prefix reads
    // most of the table (Postgres chose it on a small table). The page is
    // cut here.
    let mut ids = Vec::new();
    for condition in search.by {
        let matches = Query::select()
            .column((user::Entity, user::Column::Id))
            .from(user::Entity)
            .cond_where(condition)
            .limit(NARROW + 1)
            .to_owned();
        for row in conn.query_all_raw(backend.build(&matches)).await? {
            let id = row.try_get::<Uuid>("", "id")?;
            if search.after.is_none_or(|after| id > after) {
                ids.push(id);
            }
        }
    }
    ids.sort_unstable();
    ids.dedup();
    ids.truncate(usize::try_from(take).unwrap_or(usize::MAX));
    Ok(Probe::Ids(ids))
}

/// The accounts `ids`, by id.
async fn by_ids(conn: &impl ConnectionTrait, ids: Vec<Uuid>) -> Result<Vec<user::Model>, AppError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(user::Entity::find()
        .filter(user::Column::Id.is_in(ids))
        .order_by_asc(user::Column::Id)
        .all(conn)
        .await?)
}

/// A search that matches few accounts and has other filters too: the ids
/// of every match (at most [`NARROW`]), sorted here, then the first `take`
/// rows. `None` when more match (each prefix has at most `NARROW` matches,
/// but together more): the caller walks the primary key.
///
/// Why: with `ORDER BY id LIMIT n`, Postgres walks the primary key and
/// filters, expecting matches to be common; for a rare prefix it read
/// ~90,000 rows of 200,000 (300 ms) where the prefix indexes answer in
/// well under a millisecond.
async fn narrow_search(
    conn: &impl ConnectionTrait,
    select: sea_orm::Select<user::Entity>,
    take: u64,
) -> Result<Option<Vec<user::Model>>, AppError> {
    let mut ids: Vec<Uuid> = select
        .select_only()
        .column(user::Column::Id)
        .limit(NARROW + 1)
        .into_tuple()
        .all(conn)
        .await?;
    if ids.len() as u64 > NARROW {
        return Ok(None);
    }
    ids.sort_unstable();
    ids.truncate(usize::try_from(take).unwrap_or(usize::MAX));
    Ok(Some(by_ids(conn, ids).await?))
}

/// `user(id)`: the account and its counts, or `None`.
pub async fn find(
    state: &AppState,
    meta: &RequestMeta,
    admin: &Admin,
    id: Uuid,
) -> Result<Option<UserDetail>, AppError> {
    viewed(
        state,
        meta,
        admin,
        json!({ "operation": "user", "id": id.to_string() }),
    )
    .await?;
    let conn = state.db.read();
    let Some(user) = user::Entity::find_by_id(id).one(conn).await? else {
        return Ok(None);
    };
    let now = state.clock.now();
    let active_sessions = session::Entity::find()
        .filter(session::Column::UserId.eq(id))
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(now))
        .count(conn)
        .await?;
    let passkeys = passkey::Entity::find()
        .filter(passkey::Column::UserId.eq(id))
        .count(conn)
        .await?;
    let totp = totp_factor::Entity::find_by_id(id)
        .filter(totp_factor::Column::ConfirmedAt.is_not_null())
        .count(conn)
        .await?
        > 0;
    let recovery_codes_left = mfa::recovery::left(conn, id).await?;
    Ok(Some(UserDetail {
        user,
        active_sessions,
        passkeys,
        totp,
        recovery_codes_left,
    }))
}

/// Records `USERS_VIEWED` for the admin's session, once a minute at most
/// (so paging through many accounts writes one row, not one per page).
async fn viewed(
    state: &AppState,
    meta: &RequestMeta,
    admin: &Admin,
    detail: serde_json::Value,
) -> Result<(), AppError> {
    let event = Event::new(AuditEventKind::UsersViewed)
        .user(admin.user_id)
        .session_if(admin.session_id)
        .detail(detail);
    match admin.session_id {
        Some(session_id) => {
            audit::record_view(&state.db, state.clock.now(), meta, session_id, event).await?;
        }
        // An API key has no session to group reads by: one row per read.
        None => audit::record(state.db.write(), state.clock.now(), meta, event).await?,
    }
    Ok(())
}

/// The least string above every string that starts with `prefix`: the
/// prefix with its last character moved one code point on (none when that
/// character is the last there is).
fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    let last = chars.pop()?;
    let next = match last {
        '\u{D7FF}' => '\u{E000}',
        c => char::from_u32(u32::from(c) + 1)?,
    };
    chars.push(next);
    Some(chars.into_iter().collect())
}

/// A trimmed, lowercase search, or none when blank.
fn parse_search(raw: Option<&str>) -> Result<Option<String>, AppError> {
    let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if raw.len() > MAX_SEARCH_BYTES || raw.chars().any(char::is_control) {
        return Err(AppError::bad_input(
            "search",
            "search is at most 254 bytes, without control characters",
        ));
    }
    Ok(Some(raw.to_lowercase()))
}

/// Opaque cursor for an account id.
fn encode_cursor(id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("user:{id}"))
}

/// Reads a cursor made by [`encode_cursor`].
fn decode_cursor(cursor: &str) -> Result<Uuid, AppError> {
    let bad = || AppError::bad_input("after", "not a cursor returned by users");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    text.strip_prefix("user:")
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_an_audit_cursor_is_bad_input() {
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor(&encode_cursor(id)).ok(), Some(id));
        let audit = crate::services::audit_log::encode_cursor(7);
        assert!(matches!(
            decode_cursor(&audit),
            Err(AppError::BadUserInput { field: "after", .. })
        ));
    }

    #[test]
    fn a_prefix_range_holds_exactly_the_strings_with_the_prefix() {
        assert_eq!(prefix_successor("kwame").as_deref(), Some("kwamf"));
        assert_eq!(prefix_successor("a.b_").as_deref(), Some("a.b`"));
        assert_eq!(prefix_successor("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(prefix_successor("x\u{10FFFF}"), None);
        assert_eq!(prefix_successor(""), None);
        // Byte order is code-point order: everything with the prefix sorts
        // inside [prefix, successor), its neighbours outside.
        let next = prefix_successor("jö").unwrap();
        for inside in ["jö", "jö@x", "jö\u{10FFFF}\u{10FFFF}", "jöz"] {
            assert!(inside >= "jö" && inside < next.as_str(), "{inside}");
        }
        for outside in ["jo", "jõ", "j÷", "k"] {
            assert!(!(outside >= "jö" && outside < next.as_str()), "{outside}");
        }
    }

    #[test]
    fn searches_are_trimmed_lowercased_and_bounded() {
        assert_eq!(parse_search(Some("  AdA ")).ok(), Some(Some("ada".into())));
        assert_eq!(parse_search(Some("   ")).ok(), Some(None));
        assert!(parse_search(Some(&"a".repeat(255))).is_err());
    }
}
