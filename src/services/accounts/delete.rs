//! Deleting an account's data: shared by an administrator's `deleteUser`
//! and the owner's `deleteAccount`.

use entity::{audit_event, email_token, mail_outbox, session, user};
use sea_orm::{
    sea_query::{Expr, ExprTrait, LikeExpr},
    ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter,
};
use uuid::Uuid;

use crate::{
    error::AppError,
    services::{lockout, mail::MailKind},
    state::AppState,
};

/// Deletes account `user_id` inside `txn`: its row and, with it (foreign
/// keys cascade), sessions and their refresh tokens, trusted devices,
/// email tokens, second factors, recovery codes, `mfaToken`s and passkeys;
/// its lockout counters (keyed by the email's pseudonym) and the outbox
/// rows addressed to it, or to an address it asked to change to. Its audit rows keep `user_id` (the history of what
/// happened stays) but lose the IP, the user agent and the detail, and
/// rows without an account that name the email (failed logins before it
/// registered) lose their detail. Returns false when no account has the id.
///
/// The caller records its own audit row (`USER_DELETED`,
/// `ACCOUNT_DELETED`) after this, in the same transaction.
pub async fn delete_account_data(
    txn: &DatabaseTransaction,
    state: &AppState,
    user_id: Uuid,
) -> Result<bool, AppError> {
    let Some(account) = user::Entity::find_by_id(user_id).one(txn).await? else {
        return Ok(false);
    };
    // An address the account asked to change to is personal data too: its
    // confirmation mail goes with the account (the address was no
    // account's when it was asked for, or the change was refused).
    let pending: Vec<String> = email_token::Entity::find()
        .filter(email_token::Column::UserId.eq(user_id))
        .all(txn)
        .await?
        .into_iter()
        .filter_map(|t| t.new_email)
        .collect();
    if !pending.is_empty() {
        mail_outbox::Entity::delete_many()
            .filter(mail_outbox::Column::Recipient.is_in(pending.iter().map(String::as_str)))
            .filter(mail_outbox::Column::Kind.eq(MailKind::EmailChange.name()))
            .exec(txn)
            .await?;
    }
    // Explicit, though the foreign keys cascade: a session's refresh tokens
    // go with it.
    session::Entity::delete_many()
        .filter(session::Column::UserId.eq(user_id))
        .exec(txn)
        .await?;
    user::Entity::delete_by_id(user_id).exec(txn).await?;
    if let Ok(email) = crate::auth::email::Email::parse_existing(&account.email) {
        lockout::unlock(txn, &state.pseudonyms.of(&email)).await?;
    }
    mail_outbox::Entity::delete_many()
        .filter(mail_outbox::Column::Recipient.eq(account.email.as_str()))
        .exec(txn)
        .await?;
    audit_event::Entity::update_many()
        .col_expr(audit_event::Column::Ip, Expr::value(Option::<String>::None))
        .col_expr(
            audit_event::Column::UserAgent,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            audit_event::Column::Detail,
            Expr::value(Option::<serde_json::Value>::None),
        )
        .filter(audit_event::Column::UserId.eq(user_id))
        .exec(txn)
        .await?;
    // The detail's text, as each backend stores it (SQLite may keep it
    // JSON-encoded twice, quotes escaped), so the address alone is matched;
    // an address that contains this one loses its detail too, which errs on
    // the side of forgetting.
    let quoted = format!("%{}%", escape_like(&account.email));
    audit_event::Entity::update_many()
        .col_expr(
            audit_event::Column::Detail,
            Expr::value(Option::<serde_json::Value>::None),
        )
        .filter(audit_event::Column::UserId.is_null())
        .filter(
            Expr::col(audit_event::Column::Detail)
                .cast_as("TEXT")
                .like(LikeExpr::new(quoted).escape('\\')),
        )
        .exec(txn)
        .await?;
    Ok(true)
}

/// `raw` with `LIKE`'s wildcards and the escape character escaped (`\`).
pub fn escape_like(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
