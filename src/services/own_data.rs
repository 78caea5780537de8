//! The owner's rights over the account's data: `deleteAccount` (erasure)
//! and `exportMyData` (access and portability).
//!
//! Both need a session: an API key may not delete its owner, and a leaked
//! key must not be a way to download the account's history (`FORBIDDEN`).

use entity::{
    api_key, audit_event, email_token, mail_outbox, passkey, recovery_code, session, totp_factor,
    trusted_device,
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::{json, Value};

use crate::{
    auth::limiter::Rule,
    domain::{AuditEventKind, Role},
    error::AppError,
    meta::RequestMeta,
    services::{
        accounts::{
            check_current_password, delete_account_data, keep_an_admin, lock_active_admins,
        },
        audit::{self, Event},
        audit_log,
        auth_user::AuthUser,
        limits::{self, KeyFacts},
        mfa,
    },
    state::AppState,
};

/// The newest audit events an export holds; older ones stay readable
/// through `auditLog`. Bounds the document (and the work of building it)
/// however many events someone made an account collect.
pub const EXPORT_AUDIT_EVENTS: u64 = 10_000;

/// The newest sessions and trusted devices an export lists (each list's
/// total is given too): an account has no cap on how many it has made
/// since the last cleanup.
pub const EXPORT_LIST_ROWS: u64 = 1_000;

/// The name and version of the export's shape.
pub const EXPORT_FORMAT: &str = "warden-export/1";

/// `deleteAccount`: the owner deletes the account. A current code from the
/// authenticator app first (while one is on), then the password (limited
/// and locked out like `login`); then, in one transaction, everything the
/// account owns goes ([`delete_account_data`]) and `ACCOUNT_DELETED` is
/// recorded under its id, without the request's IP or user agent, which
/// are the deleted person's too. The last active admin cannot delete
/// itself (`BAD_USER_INPUT`): promote another account first.
pub async fn delete_account(
    state: &AppState,
    meta: &RequestMeta,
    caller: &AuthUser,
    current_password: &str,
    code: Option<&str>,
) -> Result<bool, AppError> {
    caller.require_session()?;
    limits::enforce_rule(state, meta, Rule::LoginIp, KeyFacts::of(meta)).await?;
    mfa::demand_second_factor(state, meta, caller, code, "deleteAccount").await?;
    let success =
        check_current_password(state, meta, caller, current_password, "deleteAccount").await?;
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    // Only an administrator can be the last one: the admins' rows are
    // locked (which waits on every admin operation) only then.
    let admins = if Role::from_stored(&caller.user.role) == Role::Admin {
        lock_active_admins(&txn).await?
    } else {
        Vec::new()
    };
    if let Err(refused) = keep_an_admin(&admins, caller.user.id, "currentPassword") {
        // The password was right: the lockout must count it so.
        txn.rollback().await?;
        let txn = state.db.begin().await?;
        success.settle(&txn).await?;
        txn.commit().await?;
        return Err(refused);
    }
    success.settle(&txn).await?;
    if !delete_account_data(&txn, state, caller.user.id).await? {
        // Deleted meanwhile (by an administrator, or a second request).
        return Err(AppError::Unauthenticated(
            crate::error::UnauthReason::Revoked,
        ));
    }
    let anonymous = RequestMeta {
        ip: None,
        user_agent: None,
        bucket: None,
        ..meta.clone()
    };
    let event = Event::new(AuditEventKind::AccountDeleted).user(caller.user.id);
    audit::record(&txn, now, &anonymous, event).await?;
    txn.commit().await?;
    Ok(true)
}

/// `exportMyData`: everything Warden holds about the caller, as one JSON
/// document ([`EXPORT_FORMAT`]), newest first, each long list bounded
/// ([`EXPORT_LIST_ROWS`], [`EXPORT_AUDIT_EVENTS`]) with its total. Secrets and their hashes never appear:
/// not the password hash, refresh or device tokens, the authenticator's
/// secret, recovery codes, passkey public keys, API-key hashes or mail
/// bodies (which hold links). What another person did to the account
/// (an administrator's change) appears without that person's IP, user
/// agent, session or id. Limited per account (`WARDEN_RATE_EXPORT`) and
/// audited `DATA_EXPORTED`.
pub async fn export(
    state: &AppState,
    meta: &RequestMeta,
    caller: &AuthUser,
) -> Result<Value, AppError> {
    let session_id = caller.require_session()?;
    let user_id = caller.user.id;
    limits::enforce_rule(
        state,
        meta,
        Rule::ExportUser,
        KeyFacts::of(meta).with_user(user_id),
    )
    .await?;
    let now = state.clock.now();
    let event = Event::new(AuditEventKind::DataExported)
        .user(user_id)
        .session(session_id);
    audit::record(state.db.write(), now, meta, event).await?;

    // One read transaction would be a snapshot; the parts are read one
    // after another from the primary instead, which is what the account
    // holds give or take a concurrent change of the owner's own.
    let db = state.db.write();
    let account = entity::user::Entity::find_by_id(user_id)
        .one(db)
        .await?
        .ok_or(AppError::Unauthenticated(
            crate::error::UnauthReason::Revoked,
        ))?;
    let mine = session::Entity::find().filter(session::Column::UserId.eq(user_id));
    let sessions_total = mine.clone().count(db).await?;
    let sessions = mine
        .order_by_desc(session::Column::CreatedAt)
        .limit(EXPORT_LIST_ROWS)
        .all(db)
        .await?;
    let mine = trusted_device::Entity::find().filter(trusted_device::Column::UserId.eq(user_id));
    let devices_total = mine.clone().count(db).await?;
    let devices = mine
        .order_by_desc(trusted_device::Column::CreatedAt)
        .limit(EXPORT_LIST_ROWS)
        .all(db)
        .await?;
    let totp = totp_factor::Entity::find_by_id(user_id).one(db).await?;
    let codes = recovery_code::Entity::find()
        .filter(recovery_code::Column::UserId.eq(user_id))
        .all(db)
        .await?;
    let passkeys = passkey::Entity::find()
        .filter(passkey::Column::UserId.eq(user_id))
        .order_by_asc(passkey::Column::CreatedAt)
        .all(db)
        .await?;
    let keys = api_key::Entity::find()
        .filter(api_key::Column::UserId.eq(user_id))
        .order_by_asc(api_key::Column::CreatedAt)
        .all(db)
        .await?;
    let email_tokens = email_token::Entity::find()
        .filter(email_token::Column::UserId.eq(user_id))
        .order_by_asc(email_token::Column::CreatedAt)
        .all(db)
        .await?;
    // Mail to the address from before this account had it (a previous
    // holder's, kept a few days after its account went) is not this
    // account's.
    let mail = mail_outbox::Entity::find()
        .filter(mail_outbox::Column::Recipient.eq(account.email.as_str()))
        .filter(mail_outbox::Column::CreatedAt.gte(account.created_at))
        .order_by_asc(mail_outbox::Column::CreatedAt)
        .all(db)
        .await?;
    let (events, events_total) = audit_events(db, user_id).await?;

    Ok(json!({
        "format": EXPORT_FORMAT,
        "exportedAt": now,
        "account": {
            "id": account.id,
            "email": account.email,
            "username": account.username,
            "role": account.role,
            "createdAt": account.created_at,
            "lastLoginAt": account.last_login_at,
            "emailVerifiedAt": account.email_verified_at,
            "mfaEnabledAt": account.mfa_enabled_at,
            "disabledAt": account.disabled_at,
            "disabledReason": account.disabled_reason,
        },
        "sessionsTotal": sessions_total,
        "sessions": sessions.iter().map(|s| json!({
            "id": s.id,
            "createdAt": s.created_at,
            "lastUsedAt": s.last_used_at,
            "expiresAt": s.expires_at,
            "revokedAt": s.revoked_at,
            "revokedReason": s.revoked_reason,
            "ip": s.ip,
            "userAgent": s.user_agent,
            "method": s.method,
            "amr": s.amr.split_whitespace().collect::<Vec<_>>(),
            "current": s.id == session_id,
        })).collect::<Vec<_>>(),
        "trustedDevicesTotal": devices_total,
        "trustedDevices": devices.iter().map(|d| json!({
            "id": d.id,
            "createdAt": d.created_at,
            "lastUsedAt": d.last_used_at,
            "expiresAt": d.expires_at,
            "revokedAt": d.revoked_at,
            "ip": d.ip,
            "userAgent": d.user_agent,
        })).collect::<Vec<_>>(),
        "authenticatorApp": totp.map(|t| json!({
            "createdAt": t.created_at,
            "confirmedAt": t.confirmed_at,
        })),
        "recoveryCodes": {
            "total": codes.len(),
            "left": codes.iter().filter(|c| c.used_at.is_none()).count(),
            "usedAt": codes.iter().filter_map(|c| c.used_at).collect::<Vec<_>>(),
        },
        "passkeys": passkeys.iter().map(|p| json!({
            "id": p.id,
            "name": p.name,
            "createdAt": p.created_at,
            "lastUsedAt": p.last_used_at,
            "backupEligible": p.backup_eligible,
            "backedUp": p.backup_state,
        })).collect::<Vec<_>>(),
        "apiKeys": keys.iter().map(|k| json!({
            "id": k.id,
            "name": k.name,
            "prefix": k.prefix,
            "scopes": k.scopes.split_whitespace().collect::<Vec<_>>(),
            "createdAt": k.created_at,
            "lastUsedAt": k.last_used_at,
            "expiresAt": k.expires_at,
            "revokedAt": k.revoked_at,
        })).collect::<Vec<_>>(),
        "emailTokens": email_tokens.iter().map(|t| json!({
            "purpose": t.purpose,
            "newEmail": t.new_email,
            "createdAt": t.created_at,
            "expiresAt": t.expires_at,
            "usedAt": t.used_at,
        })).collect::<Vec<_>>(),
        "mail": mail.iter().map(|m| json!({
            "kind": m.kind,
            "createdAt": m.created_at,
            "sentAt": m.sent_at,
            "failedAt": m.failed_at,
        })).collect::<Vec<_>>(),
        "auditEventsTotal": events_total,
        "auditEvents": events.into_iter().map(audit_row).collect::<Vec<_>>(),
    }))
}

/// The account's newest [`EXPORT_AUDIT_EVENTS`] audit events, newest
/// first, and how many it has in all.
async fn audit_events<C: ConnectionTrait>(
    db: &C,
    user_id: uuid::Uuid,
) -> Result<(Vec<audit_event::Model>, u64), AppError> {
    let mine = audit_event::Entity::find().filter(audit_event::Column::UserId.eq(user_id));
    let total = mine.clone().count(db).await?;
    let rows = mine
        .order_by_desc(audit_event::Column::Id)
        .limit(EXPORT_AUDIT_EVENTS)
        .all(db)
        .await?;
    Ok((rows, total))
}

/// An audit row as the export shows it: as its owner sees it in
/// `auditLog` ([`audit_log::as_the_owner_sees`]).
fn audit_row(row: audit_event::Model) -> Value {
    let row = audit_log::as_the_owner_sees(row);
    json!({
        "id": row.id,
        "at": row.at,
        "kind": row.kind,
        "sessionId": row.session_id,
        "ip": row.ip,
        "userAgent": row.user_agent,
        "detail": row.detail,
    })
}
