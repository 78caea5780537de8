//! Connections that cannot exhaust memory or file descriptors: head size, connection caps.
