//! Administration of accounts: the admin `users`/`user` reads and the
//! mutations that manage another account.
//!
//! Every operation takes an [`Admin`], which only [`require_admin`] makes:
//! asking for admin rights hands back a value that can do admin things,
//! so an operation cannot forget the check. A refusal answers `FORBIDDEN`
//! and is audited as `ACCESS_DENIED`.
//!
//! - `users.rs`: the `users` connection and `user(id)`;
//! - `manage.rs`: roles, disabling, sessions, lockout;
//! - `factors.rs`: `resetUserFactors` and `sendPasswordReset`;
//! - `delete.rs`: `deleteUser`.
//!
//! # The last active admin
//! There is always an active (not disabled) admin: demoting, disabling or
//! deleting the last one answers `BAD_USER_INPUT` (field `id`; for the
//! CLI, `email`). The check is race-safe: [`lock_active_admins`] locks
//! every active admin's row (`SELECT … FOR UPDATE`, in id order so two
//! callers never deadlock) before the count, in the transaction that makes
//! the change; on SQLite every write transaction is `BEGIN IMMEDIATE`, a
//! single writer. Two admins demoting each other at once: the second waits
//! for the first, then counts one admin and is refused.

mod delete;
mod factors;
mod manage;
mod users;

pub use delete::delete_user;
pub use factors::{reset_factors, send_password_reset};
pub use manage::{disable, enable, revoke_sessions, set_role, unlock};
pub use users::{find, list, UserDetail, UserFilter, UserPage};

use entity::user;
use sea_orm::{DatabaseTransaction, EntityTrait, QuerySelect};
use serde_json::json;
use uuid::Uuid;

use crate::{
    domain::{AuditEventKind, Role},
    error::AppError,
    meta::RequestMeta,
    services::{
        audit::{self, Event},
        sessions::AuthUser,
    },
    state::AppState,
};

/// Proof that the caller is an admin: only [`require_admin`] makes one.
#[derive(Clone, Copy, Debug)]
pub struct Admin {
    user_id: Uuid,
    /// The admin's session; none for an API key with the `ADMIN` scope.
    session_id: Option<Uuid>,
}

impl Admin {
    /// The admin's account id.
    pub fn user_id(&self) -> Uuid {
        self.user_id
    }

    /// An audit event about `target`, done by this admin.
    fn event(&self, kind: AuditEventKind, target: Uuid) -> Event {
        Event::new(kind).user(target).session_if(self.session_id)
    }

    /// The `by` of an audit row's detail.
    fn by(&self) -> serde_json::Value {
        json!(self.user_id.to_string())
    }
}

/// The caller as an [`Admin`], or `FORBIDDEN` (audited `ACCESS_DENIED`
/// with the operation's name) for any other role.
pub async fn require_admin(
    state: &AppState,
    meta: &RequestMeta,
    caller: &AuthUser,
    operation: &'static str,
) -> Result<Admin, AppError> {
    if caller.role() == Role::Admin {
        return Ok(Admin {
            user_id: caller.user.id,
            session_id: caller.session_id(),
        });
    }
    let event = Event::new(AuditEventKind::AccessDenied)
        .user(caller.user.id)
        .session_if(caller.session_id())
        .detail(json!({ "operation": operation, "reason": "not_admin" }));
    audit::record(state.db.write(), state.clock.now(), meta, event).await?;
    Err(AppError::Forbidden)
}

/// A GraphQL `ID` of an account.
pub fn parse_user_id(raw: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(raw).map_err(|_| AppError::bad_input("id", "not a valid id"))
}

/// The target account, its row locked for the rest of `txn` (after the
/// admins' rows: one order for every caller); `BAD_USER_INPUT` when no
/// account has this id.
async fn locked_target(txn: &DatabaseTransaction, id: Uuid) -> Result<user::Model, AppError> {
    user::Entity::find_by_id(id)
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or_else(|| AppError::bad_input("id", "no account has this id"))
}
