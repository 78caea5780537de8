//! Documents whose expanded size, errors or fields would cost more than they are worth are refused before they run.
