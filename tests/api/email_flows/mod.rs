//! The account-lifecycle flows over email (issue #20, items 3, 4, 5 and 7),
//! end to end: a real SMTP server receives each message, the tests parse
//! it like a mail client, take the link's token or the 6-digit code, and
//! complete the flow over HTTP.

mod attacks;
mod audit;
mod change;
mod cleanup;
mod inputs;
mod parsing;
mod require;
mod reset;
mod reset_abuse;
pub mod support;
mod verify;
