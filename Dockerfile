# Multi-stage build: compile in the Rust image, run from a slim Debian.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin warden

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
