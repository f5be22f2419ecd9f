# syntax=docker/dockerfile:1
# Bunker's container image: the `bunker` binary on distroless (glibc, libgcc, CA certificates; no shell).
#
#   docker build -t bunker:dev .
#   docker run --rm -e BUNKER_DATABASE_URL=... -e BUNKER_KMS_KEY_ID=... -p 3000:3000 bunker:dev
#
# Expected size: ~57 MB uncompressed (the stripped release binary, ~33 MB, over distroless cc-debian12, ~24 MB),
# ~22 MB compressed in a registry. See docs/deploy-aws.md.
#
# Layers, slowest-changing first: the toolchain and cargo-chef, then the dependencies alone (rebuilt only when a
# Cargo.toml or Cargo.lock changes), then Bunker's own crates.

ARG RUST_IMAGE=rust:1.95.0-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS chef
# cargo-chef turns the workspace's manifests into a recipe, so dependencies build in a layer of their own.
RUN cargo install cargo-chef --version 0.2.0 --locked \
    && rm -rf "${CARGO_HOME}/registry"
WORKDIR /build
# The same profile for the dependency layer and the final build, or the cached layer would not be reused.
# Symbols stripped: 43 MB -> 33 MB (the server denies panics; logs name what failed).
ENV CARGO_PROFILE_RELEASE_STRIP=symbols \
    CARGO_TERM_COLOR=never

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /build/recipe.json recipe.json
# Dependencies only, from the lock file: this layer survives any change to Bunker's own code.
RUN cargo chef cook --release --locked -p bunker --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked -p bunker \
    && install -D -m 0555 target/release/bunker /out/bunker

FROM ${RUNTIME_IMAGE}
LABEL org.opencontainers.image.title="bunker" \
      org.opencontainers.image.description="Bunker: a multi-tenant vault for personal data speaking the Databunker Pro /v2 API." \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/bunker /usr/local/bin/bunker
# In a container the server must listen beyond the loopback (the binary's default is 127.0.0.1:3000).
ENV BUNKER_LISTEN=0.0.0.0:3000
EXPOSE 3000
# distroless :nonroot is uid/gid 65532; Bunker writes nothing to its root filesystem (logs go to stderr), so it runs
# with readOnlyRootFilesystem. No HEALTHCHECK: there is no shell or curl to run one, and Kubernetes ignores it;
# the chart probes GET /health (liveness) and GET /ready (readiness) over HTTP instead.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/bunker"]
CMD ["serve"]
