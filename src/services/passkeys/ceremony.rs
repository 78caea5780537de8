//! The server side of a WebAuthn ceremony: its state stored under its
//! challenge when it starts, claimed exactly once when it finishes.
//!
//! A finish finds its row by the challenge the client's `clientDataJSON`
//! echoes (signed by the authenticator, so a client cannot point a
//! response at another ceremony), within its purpose and, for a
//! registration, its account. The claim is a conditional UPDATE: of two
//! finishes with one challenge, one proceeds. A claimed, expired or unknown
//! challenge answers `INVALID_TOKEN`.

use chrono::{DateTime, Utc};
use entity::webauthn_challenge;
use sea_orm::{
    sea_query::Expr, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
};
use serde::{de::DeserializeOwned, Serialize};
use uuid::Uuid;

use crate::{
    auth::passkey::CEREMONY_TTL, clock::delta, db::FetchUnique, error::AppError, state::AppState,
};

/// What a ceremony is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// A signed-in account adding a passkey.
    Register,
    /// A sign-in with a passkey (passwordless, or `completeLogin`'s step).
    Login,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::Login => "login",
        }
    }
}

/// The challenge of serialised options (`{"publicKey": {"challenge": …}}`).
pub fn challenge_of(options: &serde_json::Value) -> Result<String, AppError> {
    options["publicKey"]["challenge"]
        .as_str()
        .map(|c| c.trim_end_matches('=').to_owned())
        .ok_or_else(|| AppError::internal("WebAuthn options without a challenge"))
}

/// Stores a started ceremony; its id (`PasskeyChallenge.challengeId`).
pub async fn store<C: ConnectionTrait, S: Serialize>(
    conn: &C,
    state: &AppState,
    purpose: Purpose,
    user_id: Option<Uuid>,
    challenge: String,
    ceremony: &S,
) -> Result<Uuid, AppError> {
    let now = state.clock.now();
    let id = Uuid::now_v7();
    webauthn_challenge::Entity::insert(webauthn_challenge::ActiveModel {
        id: Set(id),
        user_id: Set(user_id),
        purpose: Set(purpose.as_str().to_owned()),
        challenge: Set(challenge),
        state: Set(serde_json::to_string(ceremony).map_err(AppError::internal)?),
        created_at: Set(now),
        expires_at: Set(now + delta(CEREMONY_TTL)),
        used_at: Set(None),
    })
    .exec_without_returning(conn)
    .await?;
    Ok(id)
}

/// A claimed ceremony: its row and its state.
pub struct Claimed<S> {
    /// The stored row.
    pub row: webauthn_challenge::Model,
    /// The webauthn-rs state.
    pub state: S,
}

/// Claims the live ceremony of `purpose` whose challenge is `challenge`
/// (and, when given, whose account is `user_id`), once. `INVALID_TOKEN`
/// when there is none, it expired, or another finish claimed it first.
pub async fn claim<S: DeserializeOwned>(
    state: &AppState,
    purpose: Purpose,
    challenge: &str,
    user_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<Claimed<S>, AppError> {
    let row = webauthn_challenge::Entity::find()
        .filter(webauthn_challenge::Column::Challenge.eq(challenge))
        .unique(state.db.write())
        .await?
        .filter(|row| {
            row.purpose == purpose.as_str()
                && row.used_at.is_none()
                && row.expires_at > now
                && (user_id.is_none() || row.user_id == user_id)
        })
        .ok_or(AppError::InvalidToken)?;
    let claimed = webauthn_challenge::Entity::update_many()
        .col_expr(webauthn_challenge::Column::UsedAt, Expr::value(now))
        .filter(webauthn_challenge::Column::Id.eq(row.id))
        .filter(webauthn_challenge::Column::UsedAt.is_null())
        .exec(state.db.write())
        .await?;
    if claimed.rows_affected != 1 {
        return Err(AppError::InvalidToken);
    }
    let ceremony = serde_json::from_str(&row.state).map_err(AppError::internal)?;
    Ok(Claimed {
        row,
        state: ceremony,
    })
}
