//! The `signing_keys` row as the key mechanism ([`crate::auth::signing`])
//! sees it: the row reads as a [`StoredKey`], becomes a [`KeyRecord`] to
//! build a ring from, and a new [`KeyRecord`] becomes a row to insert. The
//! only place the `source` column's strings meet [`KeySource`].

use chrono::{DateTime, Utc};
use entity::signing_key::{self, SOURCE_ENV, SOURCE_GENERATED};

use crate::auth::signing::{KeyRecord, KeySource, StoredKey};

impl StoredKey for signing_key::Model {
    fn kid(&self) -> &str {
        &self.kid
    }
    fn algorithm(&self) -> &str {
        &self.algorithm
    }
    fn source(&self) -> Option<KeySource> {
        source_of(&self.source)
    }
    fn signing_from(&self) -> DateTime<Utc> {
        signing_key::Model::signing_from(self)
    }
    fn retire_after(&self) -> Option<DateTime<Utc>> {
        self.retire_after
    }
    fn set_retire_after(&mut self, at: Option<DateTime<Utc>>) {
        self.retire_after = at;
    }
    fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.revoked_at
    }
}

fn source_of(stored: &str) -> Option<KeySource> {
    match stored {
        SOURCE_GENERATED => Some(KeySource::Generated),
        SOURCE_ENV => Some(KeySource::Env),
        _ => None,
    }
}

/// The row's content for the ring; `None` for a source Warden does not
/// know (the ring would skip it anyway: it neither signs nor verifies).
pub(super) fn record_of(row: signing_key::Model) -> Option<KeyRecord> {
    Some(KeyRecord {
        source: source_of(&row.source)?,
        kid: row.kid,
        algorithm: row.algorithm,
        private_key: row.private_key,
        public_key: row.public_key,
        created_at: row.created_at,
        signs_from: row.signs_from,
        retire_after: row.retire_after,
        revoked_at: row.revoked_at,
    })
}

/// The row that stores `record`; `active` for a key neither retired nor
/// revoked (a new key, or the record of an environment secret).
pub(super) fn row_of(record: KeyRecord) -> signing_key::Model {
    signing_key::Model {
        active: record.retire_after.is_none() && record.revoked_at.is_none(),
        source: match record.source {
            KeySource::Generated => SOURCE_GENERATED,
            KeySource::Env => SOURCE_ENV,
        }
        .to_owned(),
        kid: record.kid,
        algorithm: record.algorithm,
        private_key: record.private_key,
        public_key: record.public_key,
        created_at: record.created_at,
        signs_from: record.signs_from,
        retire_after: record.retire_after,
        revoked_at: record.revoked_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::signing::{new_key, JwtAlgorithm};

    #[test]
    fn a_key_survives_the_trip_to_a_row_and_back() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let key = new_key(JwtAlgorithm::EdDsa, now, now).expect("key");
        let row = row_of(key.clone());
        assert!(row.active);
        assert_eq!(row.source, SOURCE_GENERATED);
        let back = record_of(row.clone()).expect("known source");
        assert_eq!(
            (back.kid, back.algorithm, back.private_key, back.public_key),
            (key.kid, key.algorithm, key.private_key, key.public_key)
        );
        assert_eq!(back.source, KeySource::Generated);
        let unknown = signing_key::Model {
            source: "elsewhere".to_owned(),
            ..row
        };
        assert!(record_of(unknown.clone()).is_none());
        assert_eq!(StoredKey::source(&unknown), None);
    }
}
