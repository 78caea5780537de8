//! IPv6 clients share one bucket per WARDEN_IPV6_PREFIX network in every limit.
