# syntax=docker/dockerfile:1
#
# Portcullis container image: a release build on the Rust image, run from debian-slim as uid 10001.
#
#   docker build -t portcullis .
#
# Mount at run time (paths inside gateway.toml are resolved against /etc/portcullis):
#   /etc/portcullis/gateway.toml  required; its `listen` must be 0.0.0.0:8443 (the shipped
#                                 development config binds 127.0.0.1, unreachable from outside)
#   /etc/portcullis/users.toml    required when [users] file = "users.toml"
#   /etc/portcullis/certs/        required in production: TLS certificate and key, signing keys
#   /etc/portcullis/data/         the SQLite store (sessions, revocations): a persistent volume,
#                                 writable by uid 10001; not needed with [store] backend = "redis"

# --- build ------------------------------------------------------------------------------------
FROM rust:1-bookworm AS build
# aws-lc-sys builds with the C compiler the image already has; CMake is its fallback on targets
# without pregenerated sources. Debian versions are not pinned: the point release brings the fixes.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The cache mounts keep the crate registry and compiled dependencies between builds; the binary
# is copied out in the same step because the target directory is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin portcullis \
    && install -D -m 0755 target/release/portcullis /out/portcullis

# --- runtime ----------------------------------------------------------------------------------
FROM debian:bookworm-slim
# ca-certificates: for https `check_url` and TLS to a store; bash (always in Debian) runs the
# health check below.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 portcullis \
    && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin portcullis \
    && install -d -o root -g 10001 -m 0755 /etc/portcullis \
    && install -d -o 10001 -g 10001 -m 0750 /etc/portcullis/certs /etc/portcullis/data
COPY --from=build /out/portcullis /usr/local/bin/portcullis

USER 10001:10001
WORKDIR /etc/portcullis
ENV PORTCULLIS_CONFIG=/etc/portcullis/gateway.toml
# Only the store is state; without a mount Docker keeps it in an anonymous volume.
VOLUME ["/etc/portcullis/data"]
# 8443: the public HTTPS listener. 9901: the admin listener (health, metrics, admin API; no
# authentication: publish it only on loopback or a private network).
EXPOSE 8443 9901

# GET /healthz on the admin listener, over bash's /dev/tcp: no curl in the image, and a 200
# status line is checked, not just an open port. PORTCULLIS_ADMIN_PORT follows a non-default
# `admin_listen` port; the address must be reachable on 127.0.0.1 (loopback or 0.0.0.0).
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${PORTCULLIS_ADMIN_PORT:-9901} && printf 'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && read -r -t 2 _ status _ <&3 && [ \"$status\" = 200 ] || exit 1"]

# SIGTERM drains in-flight requests for [server] shutdown_grace (20 s by default): run with
# `docker run --stop-timeout 30` (Docker's default is 10 s) so the drain is not cut short.
STOPSIGNAL SIGTERM
ENTRYPOINT ["portcullis"]
CMD ["run"]
