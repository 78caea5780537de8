//! [`FetchUnique`]: `one()` without the bound `LIMIT` that keeps SQLite
//! from reusing its cached statement.

use sea_orm::{ConnectionTrait, DbErr, EntityTrait, Select, SelectThree, SelectTwo, Topology};

/// `one()` for lookups by a unique key, without the `LIMIT ?` sea-orm adds.
///
/// sea-orm binds `one()`'s `LIMIT 1` as a parameter, and SQLite treats a
/// bound LIMIT as plan-relevant: every re-bind expires the cached statement,
/// so it is parsed and planned again on every execution. Profiling `me`
/// showed that re-parse on the per-request session check. A lookup by a
/// unique key (or a key the schema keeps unique) returns at most one row
/// without a LIMIT, and the cached statement is reused.
pub trait FetchUnique {
    /// The row (or rows, for a join) the query returns.
    type Row: Send;

    /// Runs the query and returns its only row, if any.
    fn unique<C: ConnectionTrait>(
        self,
        conn: &C,
    ) -> impl std::future::Future<Output = Result<Option<Self::Row>, DbErr>> + Send;
}

impl<E> FetchUnique for Select<E>
where
    E: EntityTrait,
    E::Model: Send + Sync,
{
    type Row = E::Model;

    async fn unique<C: ConnectionTrait>(self, conn: &C) -> Result<Option<E::Model>, DbErr> {
        Ok(self.all(conn).await?.into_iter().next())
    }
}

impl<E, F, G, T> FetchUnique for SelectThree<E, F, G, T>
where
    E: EntityTrait,
    F: EntityTrait,
    G: EntityTrait,
    T: Topology + Send,
    E::Model: Send + Sync,
    F::Model: Send + Sync,
    G::Model: Send + Sync,
{
    type Row = (E::Model, Option<F::Model>, Option<G::Model>);

    async fn unique<C: ConnectionTrait>(self, conn: &C) -> Result<Option<Self::Row>, DbErr> {
        Ok(self.all(conn).await?.into_iter().next())
    }
}

impl<E, F> FetchUnique for SelectTwo<E, F>
where
    E: EntityTrait,
    F: EntityTrait,
    E::Model: Send + Sync,
    F::Model: Send + Sync,
{
    type Row = (E::Model, Option<F::Model>);

    async fn unique<C: ConnectionTrait>(self, conn: &C) -> Result<Option<Self::Row>, DbErr> {
        Ok(self.all(conn).await?.into_iter().next())
    }
}
