# codex-k8s (renderer and cluster watcher) as a static binary on distroless.
#
#   docker build -t ghcr.io/<owner>/codex-k8s:0.1.0 .
#
# Base images are pinned by exact tag (no registry was reachable to read
# their digests); pin `@sha256:…` in your fork with `docker buildx imagetools
# inspect <image>` if you need byte-identical rebuilds.
#
# Build stages: Alpine's Rust targets musl, whose binaries are static by
# default. libgit2 is built with HTTPS against a vendored OpenSSL (feature
# `vendored-openssl`, in the lock file) so `--push` works over https.
#
# The Rust version is Cargo.toml's `rust-version`, the highest `rust-version`
# among the lock file's packages: building the image is the MSRV build.
# `.ci/rust-version.py` fails when the three disagree.
FROM rust:1.89.0-alpine3.22 AS chef
RUN apk add --no-cache musl-dev perl make linux-headers pkgconf python3
RUN cargo install --locked cargo-chef@0.1.78
WORKDIR /src

# The dependency layer's recipe: cargo-chef reads every manifest of the
# workspace (targets, features, benches, the lock file), so the layer cannot
# drift from Cargo.toml the way hand-written stub sources did. The recipe only
# changes with the manifests, so this stage's output keeps the layer cached.
FROM chef AS plan
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# `.ci/docker-deps.sh` replays the two cargo commands below (without Docker)
# in CI; keep them in step with it.
FROM chef AS build
COPY --from=plan /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --features watch,vendored-openssl --bin codex-k8s --recipe-path recipe.json
# The sources (.dockerignore drops .git, target, rendered, fuzz).
COPY . .
RUN cargo build --release --locked --bin codex-k8s --features watch,vendored-openssl \
 && ./target/release/codex-k8s --version \
 && mkdir -p dist/doc \
 && cp LICENSE dist/doc/ \
 && python3 .ci/notices.py --features watch,vendored-openssl --target "$(rustc -vV | sed -n 's/^host: //p')" \
      --output dist/doc/THIRD-PARTY-NOTICES

# Runtime: no shell, no package manager, uid 65532. The CA bundle
# (/etc/ssl/certs) is in the image, so https with a token works as is. The
# licence and the third-party notices (libgit2: GPL-2.0 with the linking
# exception, linked statically; OpenSSL; every crate) are in
# /usr/local/share/doc/codex-k8s.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/target/release/codex-k8s /usr/local/bin/codex-k8s
COPY --from=build /src/dist/doc /usr/local/share/doc/codex-k8s
LABEL org.opencontainers.image.licenses="Apache-2.0"
USER 65532:65532
WORKDIR /work
ENTRYPOINT ["/usr/local/bin/codex-k8s"]
CMD ["watch", "--log-format", "json"]
