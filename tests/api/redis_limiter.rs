//! The Redis rate-limit store: same decisions as governor, shared, and a
//! fallback to memory while Redis is away.
