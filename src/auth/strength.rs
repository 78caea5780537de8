//! Password strength: how many guesses zxcvbn estimates a password takes,
//! told the account's own words, at a bounded cost. [`Password::parse_for`]
//! refuses what falls under [`MIN_GUESSES_LOG10`].
//!
//! [`Password::parse_for`]: crate::auth::password::Password::parse_for

/// Passwords an attacker finds within 10^6 guesses are refused: that is
/// what an online attacker gets through rate limits in weeks, and an
/// offline one with a stolen bcrypt(12) hash in hours on one GPU.
pub const MIN_GUESSES_LOG10: f64 = 6.0;

/// The words an account gives a guesser for free: the email, its local
/// part and the pieces of it (`ada.lovelace` → `ada`, `lovelace`), the
/// domain's first label, and the username with its words.
pub fn context_words<'a>(email: &'a str, username: Option<&'a str>) -> Vec<&'a str> {
    let mut words = vec![email];
    let (local, domain) = email.rsplit_once('@').unwrap_or((email, ""));
    words.push(local);
    words.extend(domain.split('.').next());
    words.extend(username);
    let pieces = |text: &'a str| text.split(|c: char| !c.is_alphanumeric());
    words.extend(pieces(local).chain(username.into_iter().flat_map(pieces)));
    let mut kept: Vec<&str> = Vec::with_capacity(words.len());
    for word in words {
        if word.chars().count() >= 3 && !kept.contains(&word) {
            kept.push(word);
        }
    }
    kept
}

/// `None` when zxcvbn estimates at least 10^[`MIN_GUESSES_LOG10`] guesses
/// for `raw`; else a message that helps choose better: zxcvbn's warning
/// and suggestions, which describe the pattern, never the password.
pub(crate) fn too_guessable(raw: &str, context: &[&str]) -> Option<String> {
    let window = estimated_window(raw);
    let estimate = zxcvbn::zxcvbn(window, context);
    // A password that is one unit repeated (`p4$$w0rd!` eight times) is as
    // weak as its unit times the count, however long: zxcvbn sees that on
    // the whole password, so it is checked here on the unit.
    let repeated = repeated_unit(raw).map(|(unit, times)| {
        (
            zxcvbn::zxcvbn(estimated_window(unit), context),
            (times as f64).log10(),
        )
    });
    let (weakest, log10) = match repeated {
        Some((unit, extra)) if unit.guesses_log10() + extra < estimate.guesses_log10() => {
            let log10 = unit.guesses_log10() + extra;
            (unit, log10)
        }
        _ => {
            let log10 = estimate.guesses_log10();
            (estimate, log10)
        }
    };
    if log10 >= MIN_GUESSES_LOG10 {
        return None;
    }
    let mut advice = String::from("this password is too easy to guess");
    if let Some(feedback) = weakest.feedback() {
        if let Some(warning) = feedback.warning() {
            advice.push_str(&format!(": {warning}"));
        }
        for suggestion in feedback.suggestions() {
            advice.push_str(&format!(" {suggestion}"));
        }
    }
    if !advice.ends_with('.') {
        advice.push('.');
    }
    advice.push_str(" A few unrelated words make a strong password.");
    Some(advice)
}

/// Most characters of a password zxcvbn is shown.
const MAX_ESTIMATED_CHARS: usize = 40;
/// Most l33t substitution sets zxcvbn may try on one password.
const MAX_L33T_SETS: usize = 16;
/// zxcvbn 3.1's l33t table: the symbols it reads as each letter.
const L33T: [(char, &str); 12] = [
    ('a', "4@"),
    ('b', "8"),
    ('c', "({[<"),
    ('e', "3"),
    ('g', "69"),
    ('i', "1!|"),
    ('l', "1|7"),
    ('o', "0"),
    ('s', "$5"),
    ('t', "+7"),
    ('x', "%"),
    ('z', "2"),
];

/// The prefix of `raw` that zxcvbn is given, so its cost stays bounded.
///
/// Why: zxcvbn matches its dictionaries against every substring once per
/// l33t substitution set, and the sets multiply with each l33t symbol the
/// password holds (`4@8({[<369!1|70$5+%2` gives hundreds): measured in a
/// release build, a 72-byte password of such symbols took 0.8 s of CPU,
/// a denial of service on every `register`. So the estimate reads at most
/// 40 characters, and stops before the symbol that would take the
/// substitution sets past 16. A prefix's estimate is (nearly always) at
/// most the whole password's, so this errs towards refusing: a password
/// refused for its prefix can be fixed by changing its start.
fn estimated_window(raw: &str) -> &str {
    let mut seen: Vec<char> = Vec::new();
    for (count, (at, c)) in raw.char_indices().enumerate() {
        if count == MAX_ESTIMATED_CHARS {
            return &raw[..at];
        }
        if L33T.iter().any(|(_, subs)| subs.contains(c)) && !seen.contains(&c) {
            seen.push(c);
            if l33t_sets(&seen) > MAX_L33T_SETS {
                return &raw[..at];
            }
        }
    }
    raw
}

/// How many substitution sets zxcvbn tries for these symbols, at least:
/// the product, over letters, of how many of the symbols stand for it.
fn l33t_sets(symbols: &[char]) -> usize {
    L33T.iter()
        .map(|(_, subs)| subs.chars().filter(|c| symbols.contains(c)).count().max(1))
        .product()
}

/// `Some((unit, times))` when `raw` is `unit` repeated `times` ≥ 2 times
/// (a trailing partial unit allowed), for the shortest such unit.
fn repeated_unit(raw: &str) -> Option<(&str, usize)> {
    let chars: Vec<(usize, char)> = raw.char_indices().collect();
    let n = chars.len();
    (1..=n / 2)
        .find(|&p| (p..n).all(|i| chars[i].1 == chars[i - p].1))
        .map(|p| (&raw[..chars[p].0], n / p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_itself_is_context_for_the_estimate() {
        let words = context_words("ada.lovelace@analytical.example", Some("countess ada"));
        for word in [
            "ada.lovelace@analytical.example",
            "ada.lovelace",
            "analytical",
            "lovelace",
            "countess",
        ] {
            assert!(words.contains(&word), "{word} in {words:?}");
        }
        // The policy's side of this (`Password::parse_for`) is tested in
        // `auth::password`, which uses this module (never the reverse).
        let personal = "ada.lovelace";
        assert!(too_guessable(personal, &[]).is_none());
        assert!(too_guessable(personal, &words).is_some());
    }

    #[test]
    fn the_estimate_reads_a_bounded_window() {
        let l33t = "4@8({[<369!1|70$5+%2".repeat(4);
        let window = estimated_window(&l33t);
        assert!(window.len() < 16, "{window}");
        assert!(l33t_sets(&window.chars().collect::<Vec<_>>()) <= MAX_L33T_SETS);
        let plain = "correct horse battery staple and then some more words";
        assert_eq!(estimated_window(plain).chars().count(), MAX_ESTIMATED_CHARS);
        assert_eq!(
            repeated_unit("p4$$w0rd!p4$$w0rd!p4$"),
            Some(("p4$$w0rd!", 2))
        );
        assert_eq!(repeated_unit("correct horse"), None);
        // Repeated to 72 bytes, a weak unit stays weak.
        assert!(too_guessable(&"p4$$w0rd!".repeat(8), &[]).is_some());
    }

    /// zxcvbn runs on the request's thread: its worst case on a
    /// policy-sized password must stay small. Run with `--nocapture` for
    /// the figures; the bound is generous for a busy machine.
    #[test]
    fn the_estimate_costs_little_even_at_72_bytes() {
        let context = context_words("ada.lovelace@example.com", Some("ada"));
        let candidates = [
            "a".repeat(72),
            "ab".repeat(36),
            "abcdefghijklmnopqrstuvwxyz".repeat(3)[..72].to_owned(),
            "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik,9ol.0p;/".repeat(2)[..72].to_owned(),
            "passwordpasswordpasswordpasswordpasswordpasswordpasswordpasswordpassword"[..72]
                .to_owned(),
            "19841985198619871988198919901991199219931994199519961997199819992000".to_owned(),
            "é".repeat(36),
            "ada.lovelace".repeat(6),
            // Every l33t symbol: the unbounded worst case (0.4-0.6 s in release).
            "4@8({[<369!1|70$5+%2".repeat(4)[..72].to_owned(),
            "7|1!3@4$5+6(9{8[0<2%".repeat(4)[..72].to_owned(),
            "x7#Kq!2mZ@9vL$4pR&8wN*3tY^6bH(1cJ)5fG_0dS+".repeat(2)[..72].to_owned(),
        ];
        let mut worst = std::time::Duration::ZERO;
        for candidate in &candidates {
            let started = std::time::Instant::now();
            let _ = too_guessable(candidate, &context);
            let took = started.elapsed();
            println!(
                "zxcvbn {:>6} µs  {} bytes  {:.12}",
                took.as_micros(),
                candidate.len(),
                candidate
            );
            worst = worst.max(took);
        }
        assert!(
            worst < std::time::Duration::from_millis(250),
            "worst {worst:?}"
        );
    }
}
