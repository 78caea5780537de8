# syntax=docker/dockerfile:1
# Multi-stage build: compile in the Rust image, run from a slim Debian as a
# non-root user. Needs BuildKit (the default builder of Docker 23+ and of
# `docker compose` v2) for the cache mounts.

FROM rust:1-bookworm AS build
WORKDIR /src

# 1. Dependencies only, in their own layer: the manifests and the lock file
#    with stub sources. This layer is rebuilt only when a manifest or
#    Cargo.lock changes, so a code change does not recompile ~490 crates.
#    Every target the manifest names (tests, benches, examples) gets an empty
#    stub too, so cargo can read the manifest.
COPY Cargo.toml Cargo.lock ./
# The build settings (SQLite without STAT4; see the file).
COPY .cargo .cargo
COPY entity/Cargo.toml entity/Cargo.toml
COPY migration/Cargo.toml migration/Cargo.toml
RUN mkdir -p src entity/src migration/src tests/api bench \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs entity/src/lib.rs migration/src/lib.rs \
    && for stub in tests/api/main.rs bench/crypto.rs bench/ceiling.rs bench/sqlite_ceiling.rs; do \
         echo 'fn main() {}' > "$stub"; \
       done
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    cargo build --release --locked --bin warden

# 2. The real sources. COPY keeps the files' own timestamps, which can be
#    older than the stub build, so touch them: cargo must see them as new and
#    rebuild Warden's three crates (and only those).
COPY src src
COPY entity/src entity/src
COPY migration/src migration/src
# GraphiQL's pinned assets, embedded into the binary with include_bytes!.
COPY assets/graphiql/vendor assets/graphiql/vendor
COPY assets/graphiql/init.js assets/graphiql/page.css assets/graphiql/
# The built-in mail templates, embedded with include_str!.
COPY assets/mail assets/mail
RUN touch src/main.rs src/lib.rs entity/src/lib.rs migration/src/lib.rs
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    cargo build --release --locked --bin warden

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/warden --create-home warden
COPY --from=build /src/target/release/warden /usr/local/bin/warden
USER warden
WORKDIR /var/lib/warden
ENV WARDEN_LISTEN=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 CMD ["warden", "healthcheck"]
ENTRYPOINT ["warden"]
CMD ["serve"]
