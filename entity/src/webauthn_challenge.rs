//! `webauthn_challenges`: the server-side state of one WebAuthn ceremony
//! (a passkey registration or sign-in), found by its challenge and claimed
//! once by a conditional UPDATE. The state holds the challenge and, for a
//! registration, the account's handle: nothing that signs anything.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webauthn_challenges")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The account registering a passkey; none for a sign-in.
    pub user_id: Option<Uuid>,
    /// `register` or `login`.
    pub purpose: String,
    /// The challenge, base64url as the client echoes it in `clientDataJSON`.
    #[sea_orm(unique)]
    pub challenge: String,
    /// The webauthn-rs ceremony state, serialised.
    pub state: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    /// Set once, when a finish claimed it.
    pub used_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::Id",
        on_delete = "Cascade"
    )]
    User,
}

impl ActiveModelBehavior for ActiveModel {}
