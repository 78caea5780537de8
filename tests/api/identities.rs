//! Emails and usernames that cannot impersonate, and passwords that are hard to guess.
