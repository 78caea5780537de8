//! The rotation on SQLite: one read, then the four writes as four
//! statements in one write transaction (the database is in-process, so a
//! statement costs no network round trip).

use entity::{audit_event, refresh_token, session, user};
use sea_orm::{sea_query::Expr, ActiveValue, ColumnTrait, DbErr, EntityTrait, QueryFilter};

use super::{token_row, Claim, Outcome, Presented, Rotation};
use crate::db::{Db, FetchUnique};

/// [`super::run`] on SQLite: the read, the refusal rules, then the writes.
pub(super) async fn read_then_write(db: &Db, rotation: Rotation) -> Result<Outcome, DbErr> {
    // Token, session and owner in one read.
    let found = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(rotation.presented_hash.as_str()))
        .find_also_related(session::Entity)
        .and_also_related(user::Entity)
        .unique(db.read())
        .await?;
    let Some((token, Some(session), Some(user))) = found else {
        return Ok(Outcome::Unknown);
    };
    let presented = Presented {
        token_id: token.id,
        token_used_at: token.used_at,
        token_expires_at: token.expires_at,
        session_id: session.id,
        session_expires_at: session.expires_at,
        session_revoked: session.revoked_at.is_some(),
        session_amr: session.amr.clone(),
        user,
    };
    if let Some(reason) = presented.refusal(rotation.now) {
        return Ok(Outcome::Refused { presented, reason });
    }
    let claim = in_transaction(db, &presented, rotation).await?;
    Ok(Outcome::Tried { presented, claim })
}

/// The four writes, each only if the one before changed a row.
async fn in_transaction(
    db: &Db,
    presented: &Presented,
    rotation: Rotation,
) -> Result<Claim, DbErr> {
    let now = rotation.now;
    let txn = db.begin().await?;
    let changed = |result: sea_orm::UpdateResult| result.rows_affected == 1;
    let touch = session::Entity::update_many()
        .col_expr(session::Column::LastUsedAt, Expr::value(now))
        .filter(session::Column::Id.eq(presented.session_id))
        .filter(session::Column::RevokedAt.is_null());
    // Returning early drops `txn`, which rolls it back.
    if !changed(touch.exec(&txn).await?) {
        return Ok(Claim::SessionEnded);
    }
    let claim = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::UsedAt, Expr::value(now))
        .filter(refresh_token::Column::Id.eq(presented.token_id))
        .filter(refresh_token::Column::UsedAt.is_null());
    if !changed(claim.exec(&txn).await?) {
        // Kept, as the one statement on Postgres keeps it.
        txn.commit().await?;
        return Ok(Claim::Lost);
    }
    let successor = token_row(
        rotation.successor_id,
        presented.session_id,
        rotation.successor_hash,
        Some(presented.token_id),
        now,
        presented.successor_expires_at(now, rotation.successor_ttl),
    );
    refresh_token::Entity::insert(successor)
        .exec_without_returning(&txn)
        .await?;
    let mut audit = rotation.audit;
    audit.user_id = ActiveValue::Set(Some(presented.user.id));
    audit.session_id = ActiveValue::Set(Some(presented.session_id));
    audit_event::Entity::insert(audit)
        .exec_without_returning(&txn)
        .await?;
    txn.commit().await?;
    Ok(Claim::Rotated)
}
