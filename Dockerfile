# The Trellis image: the hub (`trellis`), the syncer (`trellis-syncer`) and the kubectl plugin
# (`kubectl-ws`) on a small Debian runtime, run as an unprivileged user, data in /var/lib/trellis.
#
#   docker build -t trellis .
#   docker run -p 6443:6443 -v trellis-data:/var/lib/trellis trellis
#
# The build stage runs the README's release build command, from the committed Cargo.lock;
# integration-tests/tests/packaging.rs checks that this file and the README agree.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p trellis-server -p trellis-syncer --bins

FROM debian:bookworm-slim AS runtime
# ca-certificates: OIDC issuers and other https peers; curl: the health check.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/trellis --create-home trellis
COPY --from=build /src/target/release/trellis /src/target/release/trellis-syncer /src/target/release/kubectl-ws /usr/local/bin/
USER 10001:10001
WORKDIR /var/lib/trellis
ENV TRELLIS_DATA_DIR=/var/lib/trellis
VOLUME ["/var/lib/trellis"]
EXPOSE 6443
# /readyz needs no credentials; the hub's own CA (created on first start) verifies its certificate.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["curl", "-fsS", "--cacert", "/var/lib/trellis/ca.crt", "https://127.0.0.1:6443/readyz"]
ENTRYPOINT ["trellis"]
CMD ["start", "--listen", "0.0.0.0:6443", "--data-dir", "/var/lib/trellis"]
