//! Device tokens: the lockout that a stranger cannot turn against the account's owner.
