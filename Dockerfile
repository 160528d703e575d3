# codex-k8s (renderer and cluster watcher) as a static binary on distroless.
#
#   docker build -t registry.example.com/codex-k8s/codex-k8s:0.1.0 .
#
# Build stage: Alpine's Rust targets musl, whose binaries are static by
# default. libgit2 is built with HTTPS (vendored OpenSSL) here so the watcher
# can clone and push over https with a token (CODEX_K8S_GIT_TOKEN); the
# default cargo build leaves git transports out (local remotes only).
FROM rust:1-alpine AS build
RUN apk add --no-cache musl-dev perl make linux-headers pkgconf
WORKDIR /src
# Everything the manifest names (bench and test targets, a build script, the
# emulator path dev-dependency); .dockerignore drops build output.
COPY . .
# `--locked` is left out on purpose: the git2 transport features add
# openssl-src to the dependency graph, which the committed lock file omits.
RUN cargo build --release --bin codex-k8s --features watch,git2/https,git2/vendored-openssl \
 && strip target/release/codex-k8s \
 && ./target/release/codex-k8s --version

# Runtime: no shell, no package manager, uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/target/release/codex-k8s /usr/local/bin/codex-k8s
USER 65532:65532
WORKDIR /work
ENTRYPOINT ["/usr/local/bin/codex-k8s"]
CMD ["watch", "--log-format", "json"]
