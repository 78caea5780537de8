//! Finding an account by its email, older spellings included.

use entity::user;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::{auth::email::Email, db::FetchUnique, error::AppError, state::AppState};

/// The account with `email`. An account stored before domains were kept in
/// ASCII (`ada@bücher.example`) is found by an older spelling too
/// ([`Email::older_spellings`]), but only when no account has the new one:
/// two rows are never treated as one. One query for every spelling.
pub async fn find_by_email(
    state: &AppState,
    email: &Email,
) -> Result<Option<user::Model>, AppError> {
    let spellings: Vec<&str> = std::iter::once(email.as_str())
        .chain(email.older_spellings())
        .collect();
    if spellings.len() == 1 {
        return Ok(user::Entity::find()
            .filter(user::Column::Email.eq(email.as_str()))
            .unique(state.db.read())
            .await?);
    }
    let mut found = user::Entity::find()
        .filter(user::Column::Email.is_in(spellings.iter().copied()))
        .all(state.db.read())
        .await?;
    // The normalized spelling first, then the older ones in their order.
    found.sort_by_key(|row| spellings.iter().position(|s| *s == row.email));
    Ok(found.into_iter().next())
}
