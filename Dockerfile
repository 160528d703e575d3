# codex-k8s (renderer and cluster watcher) as a static binary on distroless.
#
#   docker build -t ghcr.io/<owner>/codex-k8s:0.1.0 .
#
# Base images are pinned by exact tag (no registry was reachable to read
# their digests); pin `@sha256:…` in your fork with `docker buildx imagetools
# inspect <image>` if you need byte-identical rebuilds.
#
# Build stage: Alpine's Rust targets musl, whose binaries are static by
# default. libgit2 is built with HTTPS against a vendored OpenSSL (feature
# `vendored-openssl`, in the lock file) so `--push` works over https.
FROM rust:1.88.0-alpine3.22 AS build
RUN apk add --no-cache musl-dev perl make linux-headers pkgconf
WORKDIR /src
# Dependency layer: the manifests and lock file with stub sources, so a
# source change rebuilds only codex-k8s itself, not its ~300 dependencies.
COPY Cargo.toml Cargo.lock ./
COPY crates/kube-emulator/Cargo.toml crates/kube-emulator/Cargo.toml
RUN mkdir -p src benches tests crates/kube-emulator/src \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && echo 'fn main() {}' > benches/render.rs && touch tests/main.rs crates/kube-emulator/src/lib.rs \
 && cargo build --release --locked --bin codex-k8s --features watch,vendored-openssl \
 && rm -rf src benches tests crates/kube-emulator/src target/release/.fingerprint/codex-k8s-*
# The sources (.dockerignore drops .git, target, rendered).
COPY . .
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin codex-k8s --features watch,vendored-openssl \
 && ./target/release/codex-k8s --version

# Runtime: no shell, no package manager, uid 65532. The CA bundle
# (/etc/ssl/certs) is in the image, so https with a token works as is.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/target/release/codex-k8s /usr/local/bin/codex-k8s
USER 65532:65532
WORKDIR /work
ENTRYPOINT ["/usr/local/bin/codex-k8s"]
CMD ["watch", "--log-format", "json"]
