//! Email tokens and their codes: issued (superseding older ones of the same
//! purpose), looked up from what the client presents, and claimed once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::email_token;
use sea_orm::{
    sea_query::{Expr, ExprTrait},
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::{Purpose, TokenInput, CODE_TRIES};
use crate::{
    auth::{email::Email, email_code, limiter::Rule, opaque_token},
    clock::delta,
    db::FetchUnique,
    error::AppError,
    meta::RequestMeta,
    services::limits::{self, KeyFacts},
    state::AppState,
};

/// A freshly issued token and code: they exist only until the mail that
/// carries them is rendered and sealed.
pub(super) struct Issued {
    /// The link's token.
    pub token: SecretString,
    /// The 6-digit code.
    pub code: SecretString,
}

/// Issues a `purpose` token for `user_id`, mailed to `mailed_to`, on
/// `conn` (the transaction that also enqueues its mail). Every older live
/// token of the account for the same purpose is superseded.
#[allow(clippy::too_many_arguments)]
pub(super) async fn issue<C: ConnectionTrait>(
    conn: &C,
    state: &AppState,
    user_id: Uuid,
    purpose: Purpose,
    mailed_to: &Email,
    new_email: Option<&str>,
    ttl: Duration,
    now: DateTime<Utc>,
) -> Result<Issued, AppError> {
    email_token::Entity::update_many()
        .col_expr(email_token::Column::UsedAt, Expr::value(now))
        .filter(email_token::Column::UserId.eq(user_id))
        .filter(email_token::Column::Purpose.eq(purpose.as_str()))
        .filter(email_token::Column::UsedAt.is_null())
        .exec(conn)
        .await?;
    let id = Uuid::now_v7();
    let token = opaque_token::generate();
    let code = email_code::generate();
    email_token::Entity::insert(email_token::ActiveModel {
        id: Set(id),
        user_id: Set(user_id),
        purpose: Set(purpose.as_str().to_owned()),
        token_hash: Set(opaque_token::hash(token.expose_secret())),
        code_hash: Set(state.codes.digest(id, code.expose_secret())),
        email_key: Set(state.pseudonyms.of(mailed_to)),
        new_email: Set(new_email.map(str::to_owned)),
        attempts: Set(0),
        created_at: Set(now),
        expires_at: Set(now + delta(ttl)),
        used_at: Set(None),
    })
    .exec_without_returning(conn)
    .await?;
    Ok(Issued { token, code })
}

/// What a link's token is now, for a page that shows it before anything
/// is consumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenState {
    /// It would work.
    Live,
    /// Used, or superseded by a newer mail.
    Used,
    /// Past its lifetime.
    Expired,
    /// No such token (or not of this purpose, or malformed).
    Unknown,
}

/// The state of `token` for `purpose`. Reads only: consumes nothing.
pub async fn token_state(
    state: &AppState,
    purpose: Purpose,
    token: &str,
) -> Result<TokenState, AppError> {
    if !opaque_token::looks_valid(token) {
        return Ok(TokenState::Unknown);
    }
    let row = email_token::Entity::find()
        .filter(email_token::Column::TokenHash.eq(opaque_token::hash(token)))
        .filter(email_token::Column::Purpose.eq(purpose.as_str()))
        .unique(state.db.read())
        .await?;
    Ok(match row {
        None => TokenState::Unknown,
        Some(row) if row.used_at.is_some() => TokenState::Used,
        Some(row) if row.expires_at <= state.clock.now() => TokenState::Expired,
        Some(_) => TokenState::Live,
    })
}

/// The live token `input` names, after the rate limits: the link's token,
/// or the newest live code mailed to the address, whose try is counted
/// before the comparison (so concurrent guesses cannot exceed
/// [`CODE_TRIES`]). Nothing is consumed yet: the flow [`claim`]s the row
/// in the transaction of its effect. `INVALID_TOKEN` for anything else.
pub(super) async fn find(
    state: &AppState,
    meta: &RequestMeta,
    purpose: Purpose,
    input: &TokenInput,
) -> Result<email_token::Model, AppError> {
    limits::enforce_rule(state, meta, Rule::EmailTokenIp, KeyFacts::of(meta)).await?;
    let now = state.clock.now();
    match input {
        TokenInput::Link(token) => {
            if !opaque_token::looks_valid(token) {
                return Err(AppError::InvalidToken);
            }
            email_token::Entity::find()
                .filter(email_token::Column::TokenHash.eq(opaque_token::hash(token)))
                .filter(email_token::Column::Purpose.eq(purpose.as_str()))
                .unique(state.db.write())
                .await?
                .filter(|row| row.used_at.is_none() && row.expires_at > now)
                .ok_or(AppError::InvalidToken)
        }
        TokenInput::Code { email, code } => {
            let email = Email::parse_existing(email)?;
            limits::enforce_rule(
                state,
                meta,
                Rule::EmailCode,
                KeyFacts::of(meta).with_email(&state.pseudonyms, &email),
            )
            .await?;
            let row = email_token::Entity::find()
                .filter(email_token::Column::EmailKey.eq(state.pseudonyms.of(&email)))
                .filter(email_token::Column::Purpose.eq(purpose.as_str()))
                .filter(email_token::Column::UsedAt.is_null())
                .filter(email_token::Column::ExpiresAt.gt(now))
                .order_by_desc(email_token::Column::CreatedAt)
                .one(state.db.write())
                .await?
                .ok_or(AppError::InvalidToken)?;
            // The try is spent first, whatever the code: the conditional
            // UPDATE refuses a sixth, however many run at once.
            let counted = email_token::Entity::update_many()
                .col_expr(
                    email_token::Column::Attempts,
                    Expr::col(email_token::Column::Attempts).add(1),
                )
                .filter(email_token::Column::Id.eq(row.id))
                .filter(email_token::Column::Attempts.lt(CODE_TRIES))
                .filter(email_token::Column::UsedAt.is_null())
                .exec(state.db.write())
                .await?;
            if counted.rows_affected != 1 || !state.codes.matches(row.id, code, &row.code_hash) {
                return Err(AppError::InvalidToken);
            }
            Ok(row)
        }
    }
}

/// Consumes token `id` inside `conn` (the transaction of its effect): of
/// two concurrent claims one wins, the other gets `INVALID_TOKEN`.
pub(super) async fn claim<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    let claimed = email_token::Entity::update_many()
        .col_expr(email_token::Column::UsedAt, Expr::value(now))
        .filter(email_token::Column::Id.eq(id))
        .filter(email_token::Column::UsedAt.is_null())
        .filter(email_token::Column::ExpiresAt.gt(now))
        .exec(conn)
        .await?;
    if claimed.rows_affected == 1 {
        Ok(())
    } else {
        Err(AppError::InvalidToken)
    }
}
