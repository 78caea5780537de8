//! Email tokens and their codes: issued (superseding older ones of the same
//! purpose), looked up from what the client presents, and claimed once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{email_token, user};
use sea_orm::{
    sea_query::{Expr, ExprTrait},
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::{
    auth::{email::Email, email_code, limiter::Rule, opaque_token},
    clock::delta,
    db::FetchUnique,
    error::AppError,
    meta::RequestMeta,
    services::{
        limits::{self, KeyFacts},
        mail::{self, MailKind, MailValues},
    },
    state::AppState,
};

/// Wrong codes after which a code is dead (the next try fails even when right).
pub const CODE_TRIES: i32 = 5;

/// What a token is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Proves the account's address.
    Verify,
    /// Sets a new password.
    Reset,
    /// Moves the account to a new address.
    Change,
}

impl Purpose {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verify => "verify",
            Self::Reset => "reset",
            Self::Change => "change",
        }
    }
}

/// What a client presents: the link's token, or the address with the code.
pub enum TokenInput {
    /// The `token` query parameter of a mailed link.
    Link(String),
    /// The address the mail went to and the 6-digit code in it.
    Code {
        /// As typed; parsed like a login's email.
        email: String,
        /// Six digits.
        code: String,
    },
}

impl std::fmt::Debug for TokenInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Link(_) => f.write_str("TokenInput::Link([redacted])"),
            Self::Code { .. } => f.write_str("TokenInput::Code([redacted])"),
        }
    }
}

impl TokenInput {
    /// `EmailTokenInput`'s fields: exactly a token, or an email and a code
    /// (`BAD_USER_INPUT` otherwise). Empty strings count as absent.
    pub fn parse(
        token: Option<String>,
        email: Option<String>,
        code: Option<String>,
    ) -> Result<Self, AppError> {
        let present = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        match (present(token), present(email), present(code)) {
            (Some(token), None, None) => Ok(Self::Link(token)),
            (None, Some(email), Some(code)) => {
                let code = code.trim().to_owned();
                if !email_code::looks_valid(&code) {
                    return Err(AppError::bad_input("code", "the code is six digits"));
                }
                Ok(Self::Code { email, code })
            }
            (Some(_), _, _) => Err(AppError::bad_input(
                "token",
                "give either the link's token, or the email and the code, not both",
            )),
            (None, Some(_), None) => Err(AppError::bad_input("code", "the code is missing")),
            (None, None, Some(_)) => Err(AppError::bad_input("email", "the email is missing")),
            (None, None, None) => Err(AppError::bad_input(
                "token",
                "give the link's token, or the email and the code",
            )),
        }
    }
}

/// A freshly issued token and code: they exist only until the mail that
/// carries them is rendered and sealed.
struct Issued {
    /// The link's token.
    pub token: SecretString,
    /// The 6-digit code.
    pub code: SecretString,
}

/// Issues a `purpose` token for `user_id`, mailed to `mailed_to`, on
/// `conn` (the transaction that also enqueues its mail). Every older live
/// token of the account for the same purpose is superseded.
#[allow(clippy::too_many_arguments)]
async fn issue<C: ConnectionTrait>(
    conn: &C,
    state: &AppState,
    user_id: Uuid,
    purpose: Purpose,
    mailed_to: &Email,
    new_email: Option<&str>,
    ttl: Duration,
    now: DateTime<Utc>,
) -> Result<Issued, AppError> {
    // Two issues at once for one account must not both stay live: the
    // account's row is locked first (Postgres; SQLite has one writer).
    user::Entity::find_by_id(user_id)
        .lock_exclusive()
        .one(conn)
        .await?;
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
                .await?;
            // The try is spent first, whatever the code: the conditional
            // UPDATE refuses a sixth, however many run at once. Without a
            // row the same statement runs on no row and the same digest is
            // computed, so the answer's timing does not tell whether a code
            // was ever mailed to the address.
            let id = row.as_ref().map_or(Uuid::nil(), |r| r.id);
            let counted = email_token::Entity::update_many()
                .col_expr(
                    email_token::Column::Attempts,
                    Expr::col(email_token::Column::Attempts).add(1),
                )
                .filter(email_token::Column::Id.eq(id))
                .filter(email_token::Column::Attempts.lt(CODE_TRIES))
                .filter(email_token::Column::UsedAt.is_null())
                .exec(state.db.write())
                .await?;
            let stored = row.as_ref().map_or("", |r| r.code_hash.as_str());
            let right = state.codes.matches(id, code, stored);
            match row {
                Some(row) if counted.rows_affected == 1 && right => Ok(row),
                _ => Err(AppError::InvalidToken),
            }
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

/// A mail that carries a fresh token and code: for whom, what for, where to.
pub(super) struct LinkMail<'a> {
    /// The account the token acts on.
    pub user: &'a user::Model,
    /// What the token is for.
    pub purpose: Purpose,
    /// The mail that carries it.
    pub kind: MailKind,
    /// The address it goes to (the account's, or a new one).
    pub to: &'a Email,
    /// For an email change: the address the account moves to.
    pub new_email: Option<&'a str>,
    /// How long the token and code work.
    pub ttl: Duration,
}

/// Issues the token and code `mail` describes and queues its mail, on
/// `conn` (the caller's transaction; wake the sender after its commit).
pub(super) async fn issue_mailed<C: ConnectionTrait>(
    conn: &C,
    state: &AppState,
    mail: LinkMail<'_>,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    let issued = issue(
        conn,
        state,
        mail.user.id,
        mail.purpose,
        mail.to,
        mail.new_email,
        mail.ttl,
        now,
    )
    .await?;
    let values = MailValues {
        token: Some(issued.token.expose_secret().to_owned()),
        code: Some(issued.code.expose_secret().to_owned()),
        username: mail.user.username.clone(),
        new_email: mail.new_email.map(str::to_owned),
        valid_for: Some(super::in_words(mail.ttl)),
    };
    let message = mail::compose(state, mail.kind, mail.to.as_str(), &values)?;
    mail::enqueue(conn, state, message).await?;
    Ok(())
}

/// Retires every live token of `user_id` (of `purposes`, or all) inside
/// `conn`: after a password reset or change, or an email change, no link
/// or code mailed before may act on the account.
pub(crate) async fn retire<C: ConnectionTrait>(
    conn: &C,
    user_id: Uuid,
    purposes: Option<&[Purpose]>,
    now: DateTime<Utc>,
) -> Result<u64, AppError> {
    let mut update = email_token::Entity::update_many()
        .col_expr(email_token::Column::UsedAt, Expr::value(now))
        .filter(email_token::Column::UserId.eq(user_id))
        .filter(email_token::Column::UsedAt.is_null());
    if let Some(purposes) = purposes {
        update =
            update.filter(email_token::Column::Purpose.is_in(purposes.iter().map(|p| p.as_str())));
    }
    Ok(update.exec(conn).await?.rows_affected)
}
