# syntax=docker/dockerfile:1
#
# The `micros` binary, which links every service (`micros serve <service>` runs one),
# in a slim image that runs as the unprivileged user 10001, as k8s/ expects.
#
#   docker build --provenance=false -t micros:dev .
#
# (--provenance=false: Docker 29 attaches a provenance attestation by default, which
# `kind load docker-image` cannot import: "content digest … not found".)
#
# The protos compile with protox (pure Rust), so the build needs no protoc; SQLite is
# compiled in, so the runtime image needs no database library.

# Build: the toolchain satisfies `rust-version` in Cargo.toml; the slim image has the C
# compiler that the bundled SQLite needs.
FROM rust:1.95-slim-trixie AS build
WORKDIR /src
COPY . .
# The registry and target caches survive between builds; the binary is copied out in
# the same step because a cache mount is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p micros \
    && install -D -m 0755 target/release/micros /out/micros

# Runtime: the same Debian release as the build stage, so the glibc matches. The CA
# certificates let the object store verify https endpoints (S3 and compatible servers).
FROM debian:trixie-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 micros \
    && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/micros \
        --shell /usr/sbin/nologin micros
COPY --from=build /out/micros /usr/local/bin/micros
# Numeric, so that Kubernetes can verify runAsNonRoot without reading /etc/passwd.
USER 10001:10001
# `docker run micros:dev serve catalog` keeps its SQLite files under .micros/ here; in
# the cluster the root filesystem is read-only and the store is PostgreSQL.
WORKDIR /home/micros
ENTRYPOINT ["micros"]
CMD ["services"]
