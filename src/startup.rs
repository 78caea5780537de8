//! [`App::build`]: connects, migrates, loads keys, binds and wires
//! everything, exactly as `main` does and as the tests do (on port 0).

use std::{future::Future, net::SocketAddr, sync::Arc};

use tokio::net::TcpListener;

use crate::{
    auth::{
        email_code::CodeKey, jwt::AccessTokens, limiter::Limits, opaque_token::SuccessorKey,
        password::PasswordHasher, pseudonym::EmailPseudonyms, sealing::SealKey,
    },
    clock::{delta, Clock},
    config::Config,
    db::{liveness::SessionChecks, Db},
    error::AppError,
    graphql, http,
    metrics::Metrics,
    services::{mail, server_keys::ServerKeys, signing_keys},
    state::AppState,
};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The database could not be reached or migrated.
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// Key material could not be loaded or created.
    #[error("keys: {0}")]
    Keys(#[from] AppError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Settings that contradict each other (the message names the variable).
    #[error("{0}")]
    Config(String),
    /// The password hashing threads could not be started.
    #[error("cannot start the password hashing threads: {0}")]
    Threads(std::io::Error),
}

/// Connects to the database, applies migrations and builds the state.
pub async fn build_state(config: Config, clock: Clock) -> Result<AppState, StartupError> {
    // First: a bad template is a bad setting, refused before any work.
    let mail_templates = mail::templates::load(&config).map_err(StartupError::Config)?;
    if let Some(dir) = &config.mail_templates {
        tracing::info!("mail templates: overrides from {}", dir.display());
    }
    let relying_party = config.relying_party().map_err(StartupError::Config)?;
    let webauthn = crate::auth::passkey::build(&relying_party, &config.product_name)
        .map_err(StartupError::Config)?;
    tracing::info!(
        "passkeys: relying party {}, pages of {}",
        relying_party.id,
        relying_party.origins.join(", ")
    );
    let db = Db::connect(&config).await?;
    db.migrate().await?;
    let keys = ServerKeys::load(&db, &clock).await?;
    let ring = signing_keys::load_ring(&db, &config).await?;
    let tokens = AccessTokens::new(
        ring,
        &config.issuer,
        &config.audience,
        delta(config.access_token_ttl),
    );
    let hasher = PasswordHasher::for_machine(config.bcrypt_cost).map_err(StartupError::Threads)?;
    let metrics = Arc::new(Metrics::new().map_err(|e| AppError::internal(e.to_string()))?);
    let limits = Limits::build(&config, metrics.clone()).await;
    let outbox_key = SealKey::new(&keys.outbox)
        .ok_or_else(|| AppError::internal("the stored mail-outbox key is not 32 bytes"))?;
    let totp_key = SealKey::new(&keys.totp)
        .ok_or_else(|| AppError::internal("the stored totp-secret key is not 32 bytes"))?;
    Ok(AppState {
        outbox_key,
        codes: CodeKey::new(keys.code),
        totp_key,
        recovery_codes: CodeKey::new(keys.recovery),
        mail_wake: Arc::new(tokio::sync::Notify::new()),
        mail_templates: Arc::new(mail_templates),
        webauthn: Arc::new(webauthn),
        limits,
        metrics,
        session_checks: SessionChecks::start(db.clone(), clock.clone()),
        db,
        config: Arc::new(config),
        clock,
        tokens: Arc::new(tokens),
        successors: SuccessorKey::new(keys.successor),
        pseudonyms: EmailPseudonyms::new(keys.pseudonym),
        hasher,
    })
}

/// One WARN line for each thing a browser would silently get wrong with
/// these settings: above all, in cookie mode, a CORS origin on another
/// site than the API, whose requests would never carry the cookie.
fn warn_about_cookies(config: &Config) {
    for warning in config.cookie_warnings() {
        tracing::warn!("cookie mode: {warning}");
    }
}

/// A built server, bound and ready to run.
pub struct App {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
    /// The global connection cap: `max_connections`, or less when the
    /// open-files limit cannot hold that many.
    max_connections: usize,
    /// The `WARDEN_METRICS_LISTEN` listener, bound.
    metrics_listener: Option<TcpListener>,
    /// Where the mail sender delivers.
    mail_transport: mail::Transport,
}

impl App {
    /// Builds everything and binds `config.listen` (port 0 picks a free port).
    pub async fn build(config: Config, clock: Clock) -> Result<Self, StartupError> {
        config
            .check_browser_settings()
            .map_err(StartupError::Config)?;
        warn_about_cookies(&config);
        let mail_transport = mail::Transport::from_config(&config).map_err(StartupError::Config)?;
        tracing::info!("outbound mail: {}", mail_transport.describe());
        let listen = config.listen;
        // Before anything opens a descriptor: every connection needs one.
        let nofile = http::fd_limit::raise_open_files_limit();
        let max_connections = http::fd_limit::connection_budget(&config, nofile);
        let state = build_state(config, clock).await?;
        // Only a server acts on its signing settings (retiring keys of
        // another source or algorithm): a CLI command's settings may differ.
        signing_keys::take_over(&state.db, &state.config, &state.tokens, &state.clock).await?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| StartupError::Bind {
                addr: listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: listen,
            source,
        })?;
        let metrics_listener = match state.config.metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartupError::Bind { addr, source })?,
            ),
            None => None,
        };
        Ok(Self {
            listener,
            addr,
            state,
            max_connections,
            metrics_listener,
            mail_transport,
        })
    }

    /// The bound `WARDEN_METRICS_LISTEN` address, when `/metrics` has its own.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The state the server runs with.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests
    /// (for at most 10 s) and returns.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> std::io::Result<()> {
        let hasher = self.state.hasher.clone();
        // The dummy hash is computed in the background so start-up stays fast.
        tokio::spawn(async move {
            if let Err(err) = hasher.warm_up().await {
                tracing::warn!(error = %err, "could not precompute the dummy password hash");
            }
        });
        let chores = self.state.clone();
        let housekeeping = tokio::spawn(async move {
            // Every 30 s: drop idle limiter state.
            let mut every = tokio::time::interval(std::time::Duration::from_secs(30));
            every.tick().await;
            loop {
                every.tick().await;
                chores.limits.housekeeping();
            }
        });
        // Every second: pick up rotated, retired and revoked signing keys.
        let keys = tokio::spawn(signing_keys::watch(self.state.clone()));
        let cleanup = tokio::spawn(crate::cleanup::run_every(self.state.clone()));
        // Delivers the outbox: at start (mail left by a stopped instance),
        // after each commit that enqueued, and on a timer.
        let sender = tokio::spawn(mail::run(
            self.state.clone(),
            self.mail_transport,
            Some(crate::services::email::run_job),
        ));
        // zxcvbn builds its dictionaries on first use (~20 ms in release):
        // pay that on a blocking thread now, not in the first `register`.
        drop(tokio::task::spawn_blocking(|| {
            let _ = crate::auth::password::Password::parse("warm the estimator 7", "password");
        }));
        let schema = graphql::build(self.state.clone());
        let config = &self.state.config;
        let caps = http::caps::ConnectionCaps::new(
            self.max_connections,
            usize::try_from(config.max_connections_per_ip).unwrap_or(usize::MAX),
            config.ipv6_prefix,
            config.trusted_proxies.clone(),
            Some(self.state.metrics.clone()),
        );
        let mut options = http::serve::ServeOptions::new(
            config.idle_timeout,
            std::time::Duration::from_secs(10),
            caps,
        );
        options.metrics = Some(self.state.metrics.clone());
        // `/metrics` on its own listener, stopped once the main one is.
        let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
        let metrics = self.metrics_listener.map(|listener| {
            let routes = http::metrics_routes(schema.clone(), self.state.clone());
            let options = http::serve::ServeOptions::new(
                config.idle_timeout,
                std::time::Duration::from_secs(1),
                http::caps::ConnectionCaps::unlimited(),
            );
            tokio::spawn(http::serve::serve(listener, routes, options, async move {
                let _ = metrics_stopped.await;
            }))
        });
        let routes = http::routes(schema, self.state);
        let served = http::serve::serve(self.listener, routes, options, shutdown).await;
        let _ = stop_metrics.send(());
        if let Some(metrics) = metrics {
            match metrics.await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::warn!(error = %err, "the metrics listener failed"),
                Err(err) => tracing::warn!(error = %err, "the metrics listener panicked"),
            }
        }
        housekeeping.abort();
        keys.abort();
        cleanup.abort();
        sender.abort();
        served
    }
}
