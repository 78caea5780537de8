//! Signing an account in: the last step of a `register` or a login, once
//! whoever is asking has proven they may (a new account, a right password).

use chrono::{DateTime, Utc};
use entity::user;
use sea_orm::{sea_query::Expr, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter};

use crate::{
    domain::{AuditEventKind, Role, SignedInBy},
    error::AppError,
    meta::RequestMeta,
    services::{
        audit::{self, Event},
        sessions, AuthOutcome,
    },
    state::AppState,
};

/// Starts a session for `user` inside `txn`, stamps `last_login_at`,
/// records `kind`, commits, and mints the access token. The outcome carries
/// no device token: a caller that issues one (inside `txn`, before this)
/// puts it in.
pub async fn sign_in(
    state: &AppState,
    meta: &RequestMeta,
    txn: DatabaseTransaction,
    mut user: user::Model,
    kind: AuditEventKind,
    how: SignedInBy,
    now: DateTime<Utc>,
) -> Result<AuthOutcome, AppError> {
    let started = sessions::start(&txn, state, meta, user.id, &how, now).await?;
    // Only while the password is still the one that was checked: a login
    // racing a password reset or change must not keep a session the reset
    // meant to end (Postgres re-reads the row after the reset's commit;
    // SQLite has one writer). Dropping `txn` rolls the session back.
    let stamped = user::Entity::update_many()
        .col_expr(user::Column::LastLoginAt, Expr::value(now))
        .filter(user::Column::Id.eq(user.id))
        .filter(user::Column::PasswordHash.eq(user.password_hash.as_str()))
        .exec(&txn)
        .await?;
    if stamped.rows_affected != 1 {
        return Err(AppError::InvalidCredentials);
    }
    // A backstop for every way in (password, second factor, passkey): an
    // account disabled after its credentials were checked gets no session.
    // On Postgres the row was locked by the update above, so a
    // `disableUser` committing now is seen; SQLite has one writer.
    let disabled = user::Entity::find_by_id(user.id)
        .filter(user::Column::DisabledAt.is_not_null())
        .one(&txn)
        .await?;
    if disabled.is_some() {
        return Err(AppError::AccountDisabled);
    }
    user.last_login_at = Some(now);
    let event = Event::new(kind).user(user.id).session(started.session_id);
    audit::record(&txn, now, meta, event).await?;
    txn.commit().await?;
    let role = Role::from_stored(&user.role);
    let access = state
        .tokens
        .mint(user.id, started.session_id, role, &how.amr, now)?;
    Ok(AuthOutcome {
        user,
        session_id: started.session_id,
        access,
        refresh_token: started.refresh_token,
        refresh_expires_at: started.refresh_expires_at,
        device_token: None,
    })
}
