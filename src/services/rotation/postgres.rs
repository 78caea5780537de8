//! The rotation on Postgres: the read and the four writes as one statement
//! (see the module docs of [`crate::services::rotation`] for why).

use entity::user;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement, Value};

use super::{Claim, Outcome, Presented, Rotation};
use crate::db::Db;

/// The whole rotation on Postgres. `found` is the read; `touched`,
/// `claimed`, `issued` and `audited` are the writes, each gated on the one
/// before. `touched` is also gated on [`Presented::refusal`]'s rules, so a
/// refused token writes nothing. The statement returns the read (no row:
/// unknown token) and whether the session was touched and the token claimed.
///
/// Parameters: $1 presented hash, $2 now, $3 successor id, $4 successor
/// hash, $5 now + refresh TTL, then the audit row's $6 kind, $7 severity,
/// $8 ip, $9 user agent, $10 detail.
const ONE_STATEMENT: &str = concat!(
    "\
WITH found AS (
    SELECT t.id AS token_id, t.used_at AS token_used_at, t.expires_at AS token_expires_at,
           s.id AS session_id, s.expires_at AS session_expires_at,
           s.revoked_at IS NOT NULL AS session_revoked, s.amr AS session_amr,
           ",
    entity::user_columns!(),
    "
    FROM refresh_tokens t
    JOIN sessions s ON s.id = t.session_id
    JOIN users u ON u.id = s.user_id
    WHERE t.token_hash = $1
), touched AS (
    UPDATE sessions s SET last_used_at = $2
    FROM found f
    WHERE s.id = f.session_id AND s.revoked_at IS NULL AND s.expires_at > $2
      AND NOT f.session_revoked
      AND (f.token_used_at IS NOT NULL OR f.token_expires_at > $2)
    RETURNING s.id, s.expires_at
), claimed AS (
    UPDATE refresh_tokens t SET used_at = $2
    FROM found f
    WHERE t.id = f.token_id AND t.used_at IS NULL AND EXISTS (SELECT 1 FROM touched)
    RETURNING t.id
), issued AS (
    INSERT INTO refresh_tokens (id, session_id, token_hash, parent_id, issued_at, expires_at, used_at)
    SELECT $3, touched.id, $4, claimed.id, $2, LEAST(touched.expires_at, $5), NULL
    FROM touched, claimed
    RETURNING id
), audited AS (
    INSERT INTO audit_events (at, kind, severity, user_id, session_id, ip, user_agent, detail)
    SELECT $2, $6, $7, f.id, f.session_id, $8, $9, $10
    FROM found f, issued
    RETURNING id
)
SELECT f.*, EXISTS (SELECT 1 FROM touched) AS touched, EXISTS (SELECT 1 FROM claimed) AS claimed
FROM found f"
);

/// [`super::run`] on Postgres: [`ONE_STATEMENT`], then what it returned.
pub(super) async fn in_one_statement(db: &Db, rotation: Rotation) -> Result<Outcome, DbErr> {
    let now = rotation.now;
    let audit = rotation.audit;
    let value = |field: Option<Value>, what: &str| {
        field.ok_or_else(|| DbErr::Custom(format!("rotation audit row: no {what}")))
    };
    let values: Vec<Value> = vec![
        rotation.presented_hash.into(),
        now.into(),
        rotation.successor_id.into(),
        rotation.successor_hash.into(),
        (now + rotation.successor_ttl).into(),
        value(audit.kind.into_value(), "kind")?,
        value(audit.severity.into_value(), "severity")?,
        value(audit.ip.into_value(), "ip")?,
        value(audit.user_agent.into_value(), "user agent")?,
        value(audit.detail.into_value(), "detail")?,
    ];
    let statement = Statement::from_sql_and_values(DbBackend::Postgres, ONE_STATEMENT, values);
    let Some(row) = db.write().query_one_raw(statement).await? else {
        return Ok(Outcome::Unknown);
    };
    let presented = Presented {
        token_id: row.try_get("", "token_id")?,
        token_used_at: row.try_get("", "token_used_at")?,
        token_expires_at: row.try_get("", "token_expires_at")?,
        session_id: row.try_get("", "session_id")?,
        session_expires_at: row.try_get("", "session_expires_at")?,
        session_revoked: row.try_get("", "session_revoked")?,
        session_amr: row.try_get("", "session_amr")?,
        user: user::Model::from_query_result(&row, "")?,
    };
    if let Some(reason) = presented.refusal(now) {
        return Ok(Outcome::Refused { presented, reason });
    }
    let touched: bool = row.try_get("", "touched")?;
    let claimed: bool = row.try_get("", "claimed")?;
    let claim = match (touched, claimed) {
        (false, _) => Claim::SessionEnded,
        (true, false) => Claim::Lost,
        (true, true) => Claim::Rotated,
    };
    Ok(Outcome::Tried { presented, claim })
}
