# syntax=docker/dockerfile:1
# Stages: `runtime` (everything but the binary), `build` (cargo), and the image,
# runtime plus the release binary. The runtime stage comes first so that it can be
# built alone with `--target runtime` without a cargo build: Docker's legacy
# builder builds every stage up to the target, used or not.
# scripts/docker/deploy-test.sh does that and adds a binary built outside Docker.

# Runtime stage: espeak-ng for text-to-speech, tzdata for --timezone, curl for the
# healthcheck. Runs as an unprivileged user; all state lives in /data.
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends espeak-ng tzdata curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /data --shell /usr/sbin/nologin tutti \
 && mkdir -p /data && chown tutti:tutti /data
COPY scripts/docker/healthcheck.sh /usr/local/bin/tutti-healthcheck
ENV TUTTI_DATA_DIR=/data
# At most two glibc malloc arenas: tutti's threads (media, runtime workers, one
# per database connection) otherwise each grow an arena that keeps memory they
# freed; the 30-minute soak's RSS (docs/reliability.md, "Soak").
ENV MALLOC_ARENA_MAX=2
VOLUME ["/data"]
USER tutti
EXPOSE 5060/udp 5060/tcp 4011/tcp 4012/tcp 8080/tcp
# GET /healthz on the port of TUTTI_HTTP_LISTEN (default 127.0.0.1:8080).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["tutti-healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["tutti"]
CMD ["serve"]

# Build stage: the release binary with the reference libopus (feature `libopus`,
# built with cmake): faster than the pure-Rust Opus and ~8x less memory per Opus leg.
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin tutti --features libopus

# The image: the runtime stage with the release binary.
FROM runtime
COPY --from=build /src/target/release/tutti /usr/local/bin/tutti
