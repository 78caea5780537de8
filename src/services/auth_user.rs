//! [`AuthUser`]: the caller of an authenticated request, once its access
//! token verified and its session was found alive, or once its API key was
//! found live.
//!
//! It lives in a room of its own, not in [`crate::services::sessions`] which
//! produces it, so that [`crate::services::trusted_devices`] can take it
//! without depending on sessions: the arrow runs one way only, from
//! sessions (whose "log out everywhere" ends every device's trust) down to
//! trusted devices.
//!
//! # Sessions and keys
//! A caller came either through a session (a person signed in) or through
//! an API key (a script). What a key may never do (change a password, a
//! factor, an email or a key) is decided in one place: those operations
//! take the session from [`AuthUser::require_session`], which answers
//! `FORBIDDEN` for a key. The session id is private, so code that needs one
//! cannot skip the check.

use entity::user;
use uuid::Uuid;

use crate::{
    domain::{ApiKeyScope, Role},
    error::AppError,
};

/// A caller whose access token verified and whose session is alive, or
/// whose API key is live.
#[derive(Clone, Debug)]
pub struct AuthUser {
    /// The account, as stored now (so a role change applies at once).
    pub user: user::Model,
    via: Via,
}

/// How the caller authenticated.
#[derive(Clone, Debug)]
enum Via {
    Session(Uuid),
    ApiKey(KeyGrant),
}

/// What a live API key grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyGrant {
    /// The key's id.
    pub key_id: Uuid,
    /// Its scopes.
    pub scopes: Vec<ApiKeyScope>,
}

impl AuthUser {
    /// A caller signed in with a session.
    pub fn by_session(user: user::Model, session_id: Uuid) -> Self {
        Self {
            user,
            via: Via::Session(session_id),
        }
    }

    /// A caller holding an API key.
    pub fn by_key(user: user::Model, grant: KeyGrant) -> Self {
        Self {
            user,
            via: Via::ApiKey(grant),
        }
    }

    /// The role the caller acts with now: the stored role, except that an
    /// API key without the `ADMIN` scope acts as an ordinary user.
    pub fn role(&self) -> Role {
        let stored = Role::from_stored(&self.user.role);
        match &self.via {
            Via::ApiKey(grant) if !grant.scopes.contains(&ApiKeyScope::Admin) => Role::User,
            _ => stored,
        }
    }

    /// The caller's session: `FORBIDDEN` for an API key. Every operation a
    /// key may never run (changing a password, a factor, an email or a
    /// key) starts here.
    pub fn require_session(&self) -> Result<Uuid, AppError> {
        match &self.via {
            Via::Session(id) => Ok(*id),
            Via::ApiKey(_) => Err(AppError::Forbidden),
        }
    }

    /// The caller's session, if it came through one.
    pub fn session_id(&self) -> Option<Uuid> {
        match &self.via {
            Via::Session(id) => Some(*id),
            Via::ApiKey(_) => None,
        }
    }

    /// The API key the caller came with, if any.
    pub fn api_key(&self) -> Option<&KeyGrant> {
        match &self.via {
            Via::ApiKey(grant) => Some(grant),
            Via::Session(_) => None,
        }
    }
}
