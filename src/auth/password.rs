//! Passwords: the policy ([`Password::parse`]) and bcrypt, run on a few
//! dedicated low-priority threads ([`PasswordHasher`], [`HashThreads`]) so
//! hashing never stalls the async executor that serves everyone else.

use std::{
    collections::HashSet,
    fmt,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, LazyLock,
    },
    time::Duration,
};

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{OnceCell, Semaphore};
use tracing::Span;

use crate::{
    auth::{hash_threads::HashThreads, refusal_pace::RefusalPace, strength},
    error::AppError,
};

pub use crate::auth::strength::{context_words, MIN_GUESSES_LOG10};

/// bcrypt reads at most 72 bytes; longer passwords are refused, never truncated.
pub const MAX_PASSWORD_BYTES: usize = 72;
/// NIST SP 800-63B's minimum.
pub const MIN_PASSWORD_BYTES: usize = 8;

/// Passwords attackers try first; refused at registration.
static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common-passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
});

/// A password that passed the policy. Its `Debug` is redacted.
#[derive(Clone)]
pub struct Password(SecretString);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

impl Password {
    /// Applies the policy with no account context; see [`parse_for`](Self::parse_for).
    pub fn parse(raw: &str, field: &'static str) -> Result<Self, AppError> {
        Self::parse_for(raw, field, &[])
    }

    /// Applies the policy: 8 to 72 bytes of UTF-8, no NUL, not a common
    /// password, and not guessable in under [`MIN_GUESSES_LOG10`] (10^6)
    /// guesses by the zxcvbn estimator, which is told `context` (the email,
    /// its local part, the username) so `ada.lovelace2024` is weak for Ada.
    /// No composition rules, no trimming, no case folding: the password is
    /// exactly what the user typed.
    pub fn parse_for(raw: &str, field: &'static str, context: &[&str]) -> Result<Self, AppError> {
        if raw.len() < MIN_PASSWORD_BYTES {
            return Err(AppError::bad_input(
                field,
                "password must be at least 8 bytes",
            ));
        }
        if raw.len() > MAX_PASSWORD_BYTES {
            return Err(AppError::bad_input(
                field,
                "password must be at most 72 bytes (bcrypt's limit)",
            ));
        }
        if raw.contains('\0') {
            return Err(AppError::bad_input(field, "password must not contain NUL"));
        }
        if is_common(raw) {
            return Err(AppError::bad_input(
                field,
                "this password is too common; choose another",
            ));
        }
        if let Some(advice) = strength::too_guessable(raw, context) {
            return Err(AppError::bad_input(field, advice));
        }
        Ok(Self(SecretString::from(raw.to_owned())))
    }

    /// The password as typed.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// True when `raw` (compared case-insensitively) is on the common list.
pub fn is_common(raw: &str) -> bool {
    COMMON.contains(raw) || COMMON.contains(raw.to_lowercase().as_str())
}

/// Runs bcrypt off the executor, at most `threads` at a time, with a queue
/// bounded in *time*: a request that would wait longer than
/// [`MAX_QUEUE_WAIT`] behind the hashes already queued (estimated from how
/// long recent hashes took) gets `SERVICE_UNAVAILABLE` instead of piling up
/// memory and latency: at once, or, when refusals come faster than
/// [`RefusalPace`] allows, after a sleep of at most a second, so that
/// clients that resend at once cannot take the hashing threads' CPU. At a
/// low cost (tests) the queue is long, at cost 12 it is a handful of
/// requests per thread.
#[derive(Clone)]
pub struct PasswordHasher {
    cost: u32,
    permits: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    threads: usize,
    /// Moving average of one bcrypt run, in microseconds (0 until measured).
    average_micros: Arc<AtomicU64>,
    verifications: Arc<AtomicU64>,
    /// A hash of a random password at the same cost, verified for unknown
    /// emails so that "no such user" takes as long as "wrong password".
    dummy: Arc<OnceCell<String>>,
    /// Where bcrypt runs: `threads` dedicated low-priority threads.
    workers: HashThreads,
    /// The longest a request waits for a thread, whatever the estimate said.
    queue_timeout: Duration,
    /// When the requests refused for want of room are answered.
    refusals: Arc<RefusalPace>,
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("cost", &self.cost)
            .finish_non_exhaustive()
    }
}

/// The longest a hash request may expect to wait for a thread.
pub const MAX_QUEUE_WAIT: Duration = Duration::from_secs(1);

/// The longest a request waits for a thread, whatever the estimate said.
/// A request admitted on an expected wait of at most [`MAX_QUEUE_WAIT`] that
/// is still waiting at three times that was admitted on a wrong estimate
/// (the threads, at the lowest priority, get little of a busy core): a
/// prompt `SERVICE_UNAVAILABLE` the client can retry beats a login that
/// hangs for many seconds.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(3);
/// Hard limit on the queue's length, whatever the estimate says.
const MAX_WAITING_PER_THREAD: usize = 256;

impl PasswordHasher {
    /// A hasher at `cost` on `threads` dedicated threads.
    pub fn new(cost: u32, threads: usize) -> Result<Self, std::io::Error> {
        let threads = threads.max(1);
        Ok(Self {
            workers: HashThreads::start(threads)?,
            cost,
            permits: Arc::new(Semaphore::new(threads)),
            waiting: Arc::new(AtomicUsize::new(0)),
            threads,
            average_micros: Arc::new(AtomicU64::new(0)),
            verifications: Arc::new(AtomicU64::new(0)),
            dummy: Arc::new(OnceCell::new()),
            queue_timeout: QUEUE_TIMEOUT,
            refusals: Arc::new(RefusalPace::default()),
        })
    }

    /// The same hasher with another hard bound on the wait for a thread
    /// (3 s by default): past it a request gets `SERVICE_UNAVAILABLE`.
    pub fn with_queue_timeout(mut self, timeout: Duration) -> Self {
        self.queue_timeout = timeout;
        self
    }

    /// One thread for every core the process may use.
    ///
    /// The threads run at the lowest priority ([`HashThreads`]): the async
    /// executor preempts them whenever it has work, so a thread on every
    /// core takes only CPU that would otherwise idle. Keeping a core free
    /// of hashing (as Warden did before) cost a 2-core machine half its
    /// logins and bought nothing the priority does not already give.
    pub fn for_machine(cost: u32) -> Result<Self, std::io::Error> {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Self::new(cost, cores)
    }

    /// Whether a request arriving now would be queued rather than refused.
    /// Checked before a login spends a lockout attempt, so an overload
    /// refusal never counts against the account.
    pub fn has_room(&self) -> bool {
        let queued = self.waiting.load(Ordering::Acquire);
        let per_hash = self.average_micros.load(Ordering::Relaxed);
        let expected_wait =
            Duration::from_micros(per_hash.saturating_mul(queued as u64) / self.threads as u64);
        expected_wait <= MAX_QUEUE_WAIT && queued < self.threads * MAX_WAITING_PER_THREAD
    }

    /// The answer to a request that found no room ([`has_room`](Self::has_room)),
    /// given at the refusals' pace: at once, or after at most a second
    /// asleep when refusals come faster than 500 a second. The caller holds
    /// nothing of the queue while it waits.
    pub async fn refuse_overload(&self) -> AppError {
        self.refusals.wait_turn().await;
        AppError::ServiceUnavailable("password hashing queue is full".into())
    }

    /// The configured cost.
    pub fn cost(&self) -> u32 {
        self.cost
    }

    /// Hashes a policy-checked password.
    #[tracing::instrument(skip_all)]
    pub async fn hash(&self, password: &Password) -> Result<String, AppError> {
        let secret = password.0.clone();
        let cost = self.cost;
        // `Password` is at most 72 bytes, all of which bcrypt uses: nothing is truncated.
        self.run(move || bcrypt::hash(secret.expose_secret(), cost))
            .await?
            .map_err(AppError::internal)
    }

    /// Checks `candidate` against `hash`. A candidate bcrypt cannot take whole
    /// (over 72 bytes) is a mismatch, never a truncated match; it still costs
    /// one verification, so its timing says nothing.
    #[tracing::instrument(skip_all)]
    pub async fn verify(&self, candidate: &str, hash: &str) -> Result<bool, AppError> {
        let whole = candidate.len() <= MAX_PASSWORD_BYTES;
        let candidate = SecretString::from(candidate.to_owned());
        let hash = hash.to_owned();
        let outcome = self
            .run(move || bcrypt::verify(candidate.expose_secret(), &hash))
            .await?;
        self.verifications.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Ok(matched) => Ok(whole && matched),
            Err(err) => {
                // A stored hash bcrypt cannot read: nobody can log in to this
                // account until it is fixed, so say so loudly (without the hash).
                tracing::error!(error = %err, "stored password hash is unreadable");
                Ok(false)
            }
        }
    }

    /// How many verifications (real or dummy) have run since start-up.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Spends the same time as a real verification, for an email that has no
    /// account. Always a mismatch.
    #[tracing::instrument(skip_all)]
    pub async fn verify_dummy(&self, candidate: &str) -> Result<(), AppError> {
        let dummy = self.dummy_hash().await?;
        self.verify(candidate, &dummy).await.map(|_| ())
    }

    /// Computes the dummy hash now, so the first unknown-email login is not
    /// slower than later ones. Safe to call more than once.
    pub async fn warm_up(&self) -> Result<(), AppError> {
        self.dummy_hash().await.map(|_| ())
    }

    async fn dummy_hash(&self) -> Result<String, AppError> {
        self.dummy
            .get_or_try_init(|| async {
                let random = crate::auth::opaque_token::generate();
                let cost = self.cost;
                self.run(move || bcrypt::hash(random.expose_secret(), cost))
                    .await?
                    .map_err(AppError::internal)
            })
            .await
            .cloned()
    }

    /// Runs `work` on a blocking thread once a permit is free, carrying the
    /// caller's span so its logs stay attributed to the request.
    async fn run<T, F>(&self, work: F) -> Result<T, AppError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if !self.has_room() {
            return Err(self.refuse_overload().await);
        }
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let _leave = Leave(&self.waiting);
        let permit = tokio::time::timeout(self.queue_timeout, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| {
                AppError::ServiceUnavailable("timed out waiting for a hashing thread".into())
            })?
            .map_err(AppError::internal)?;
        drop(_leave);
        let span = Span::current();
        let average = self.average_micros.clone();
        self.workers
            .run(move || {
                let _permit = permit;
                let started = std::time::Instant::now();
                let out = span.in_scope(work);
                let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                // An exponential moving average (1/8 weight): steady, yet it
                // follows a change of machine load within a few hashes.
                let old = average.load(Ordering::Relaxed);
                let new = if old == 0 {
                    took
                } else {
                    old - old / 8 + took / 8
                };
                average.store(new, Ordering::Relaxed);
                out
            })
            .await
            .map_err(AppError::internal)
    }
}

/// Decrements the waiting count however the wait ends.
struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(raw: &str) -> Option<&'static str> {
        Password::parse(raw, "password").err().map(|e| e.code())
    }

    #[test]
    fn the_policy_counts_bytes_not_characters() {
        assert_eq!(code_of("short"), Some("BAD_USER_INPUT"));
        let cyrillic = "жёлудьщукапыльхвостбегемотсмородинаклён";
        let chars = |n: usize| cyrillic.chars().take(n).collect::<String>();
        assert_eq!(code_of(&chars(36)), None); // 72 bytes
        assert_eq!(code_of(&chars(37)), Some("BAD_USER_INPUT")); // 74 bytes
        assert_eq!(code_of("ééé"), Some("BAD_USER_INPUT")); // 6 bytes
    }

    #[test]
    fn nul_and_common_passwords_are_refused_and_spaces_are_kept() {
        assert_eq!(code_of("abc\0defgh"), Some("BAD_USER_INPUT"));
        assert_eq!(code_of("password123"), Some("BAD_USER_INPUT"));
        assert_eq!(code_of("PASSWORD123"), Some("BAD_USER_INPUT"));
        let spaced = Password::parse("  tide pool lantern  ", "password").ok();
        assert_eq!(
            spaced.as_ref().map(Password::expose),
            Some("  tide pool lantern  ")
        );
    }

    #[test]
    fn guessable_passwords_are_refused_with_advice_and_never_echoed() {
        for weak in [
            "aaaaaaaa",
            "abcdefgh",
            "Passw0rd!",
            "12345678",
            "qwertyuiop",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "iloveyou2",
            "January2024",
        ] {
            match Password::parse(weak, "password") {
                Err(AppError::BadUserInput { field, message }) => {
                    assert_eq!(field, "password");
                    assert!(message.starts_with("this password is"), "{weak}: {message}");
                    assert!(!message.contains(weak), "{weak} echoed in {message}");
                }
                other => panic!("{weak} gave {other:?}"),
            }
        }
        for strong in [
            "correct horse battery staple",
            "tide pool lantern",
            "  tide pool lantern  ",
            "wrong password guess",
            "another guess",
            "anything at all",
        ] {
            assert_eq!(code_of(strong), None, "{strong}");
        }
    }

    /// Moved from `auth::strength` (whose tests no longer import this
    /// module, so the two files depend one way only).
    #[test]
    fn the_account_itself_is_context_for_the_policy() {
        let words = context_words("ada.lovelace@analytical.example", Some("countess ada"));
        let personal = "ada.lovelace";
        assert!(Password::parse(personal, "password").is_ok());
        assert!(Password::parse_for(personal, "password", &words).is_err());
    }

    /// Moved from `auth::strength`, like the test above.
    #[test]
    fn a_weak_unit_repeated_to_72_bytes_stays_weak() {
        assert!(Password::parse(&"p4$$w0rd!".repeat(8), "password").is_err());
    }

    #[test]
    fn debug_never_shows_the_password() {
        let p = Password::parse("tide pool lantern", "password").ok();
        assert!(!format!("{p:?}").contains("lantern"));
    }

    /// The attack: a flood far beyond a second of queued work. What the
    /// queue cannot take is refused, and the refusals leave at the pace (a
    /// lower bound on when they are answered, never an upper one).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_is_refused_beyond_a_second_of_queued_work_at_the_refusals_pace() {
        use crate::auth::refusal_pace::{INTERVAL, MAX_DELAY};

        let hasher = PasswordHasher::new(10, 1).unwrap();
        hasher.warm_up().await.expect("dummy hash");
        let per_hash = hasher.average_micros.load(Ordering::Relaxed);
        assert!(per_hash > 0, "the first hash was timed");
        let hash = hasher.dummy_hash().await.expect("hash");
        let start = tokio::time::Instant::now();
        let flood = (0..400).map(|_| {
            let (hasher, hash) = (hasher.clone(), hash.clone());
            tokio::spawn(async move {
                let outcome = hasher.verify("guess guess guess", &hash).await;
                (outcome, start.elapsed())
            })
        });
        let results: Vec<_> = futures::future::join_all(flood)
            .await
            .into_iter()
            .map(|r| r.expect("task"))
            .collect();
        let refused: Vec<Duration> = results
            .iter()
            .filter(|(r, _)| matches!(r, Err(AppError::ServiceUnavailable(_))))
            .map(|(_, at)| *at)
            .collect();
        let served = results
            .iter()
            .filter(|(r, _)| matches!(r, Ok(false)))
            .count();
        assert_eq!(refused.len() + served, 400);
        assert!(!refused.is_empty(), "a full queue refuses");
        let queue_limit = (MAX_QUEUE_WAIT.as_micros() as usize / per_hash as usize).max(1);
        assert!(
            served <= queue_limit * 2 + 2,
            "served {served}, limit about {queue_limit}"
        );
        // n refusals at once take n slots: the last left no sooner than
        // n - 1 intervals after the flood began (or the cap, if sooner).
        let last = refused.iter().max().copied().unwrap_or_default();
        let spread = (INTERVAL * (refused.len() as u32 - 1)).min(MAX_DELAY);
        assert!(
            last >= spread,
            "{} refusals, the last after {last:?}",
            refused.len()
        );
    }

    /// Every core the process may use hashes (at the lowest priority): a
    /// core kept free of hashing cost a 2-core machine half its logins.
    #[test]
    fn the_machine_hasher_has_a_thread_for_every_core_it_may_use() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let hasher = PasswordHasher::for_machine(4).unwrap();
        assert_eq!(hasher.threads, cores);
        assert_eq!(hasher.permits.available_permits(), cores);
    }

    #[tokio::test]
    async fn hashes_verify_and_oversize_candidates_never_match() {
        let hasher = PasswordHasher::new(4, 2).unwrap();
        let password = Password::parse("tide pool lantern", "password").expect("valid");
        let hash = hasher.hash(&password).await.expect("hashed");
        assert!(hasher
            .verify("tide pool lantern", &hash)
            .await
            .expect("ran"));
        assert!(!hasher
            .verify("tide pool lanterN", &hash)
            .await
            .expect("ran"));
        let long = format!("tide pool lantern{}", "x".repeat(80));
        assert!(!hasher.verify(&long, &hash).await.expect("ran"));
        let exact = format!("{}{}", "жёлудьщукапыльхвостбегемотсмор", "tide pool!!k"); // 72 bytes
        let exact_hash = hasher
            .hash(&Password::parse(&exact, "password").expect("valid"))
            .await
            .expect("hashed");
        assert!(hasher.verify(&exact, &exact_hash).await.expect("ran"));
        assert!(!hasher
            .verify(&format!("{exact}!"), &exact_hash)
            .await
            .expect("ran"));
        hasher.verify_dummy("anything at all").await.expect("ran");
    }
}
