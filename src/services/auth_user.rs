//! [`AuthUser`]: the caller of an authenticated request, once its access
//! token verified and its session was found alive.
//!
//! It lives in a room of its own, not in [`crate::services::sessions`] which
//! produces it, so that [`crate::services::trusted_devices`] can take it
//! without depending on sessions: the arrow runs one way only, from
//! sessions (whose "log out everywhere" ends every device's trust) down to
//! trusted devices.

use entity::user;
use uuid::Uuid;

use crate::domain::Role;

/// A caller whose access token verified and whose session is alive.
#[derive(Clone, Debug)]
pub struct AuthUser {
    /// The account, as stored now (so a role change applies at once).
    pub user: user::Model,
    /// The session of the access token.
    pub session_id: Uuid,
}

impl AuthUser {
    /// The current role.
    pub fn role(&self) -> Role {
        Role::from_stored(&self.user.role)
    }
}
