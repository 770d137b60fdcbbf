# Demiurge in one image: build the release binary, then copy it into a slim runtime.
#   docker build -t demiurge .
#   docker run -d --name demiurge -v demiurge:/data \
#     -p 80:8080 -p 443:8443 -p 53:5353/udp -p 53:5353/tcp -p 51820:51820/udp \
#     -e DEMIURGE_SERVER__DOMAIN=demiurge.example.com \
#     -e DEMIURGE_SERVER__PUBLIC_URL=https://demiurge.example.com/ \
#     -e DEMIURGE_DNS__PUBLIC_IPV4=203.0.113.7 -e DEMIURGE_ACME__EMAIL=ops@example.com demiurge
# The DNS records to create first, and the rest: docs/deploy.md.

FROM rust:1.95-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake pkg-config make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so edits to our own code reuse this layer.
COPY Cargo.toml Cargo.lock ./
COPY web/Cargo.toml web/Cargo.toml
RUN mkdir -p src web/src tests/it \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs web/src/lib.rs \
 && echo 'fn main() {}' > tests/it/main.rs \
 && cargo build --release --locked --bin demiurge \
 && rm -rf src web/src tests
COPY . .
RUN touch src/main.rs src/lib.rs web/src/lib.rs \
 && cargo build --release --locked --bin demiurge \
 && strip target/release/demiurge

FROM debian:bookworm-slim
# fonts-liberation: the text of boards exported as PNG.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tini fonts-liberation \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin demiurge \
 && mkdir -p /data && chown demiurge /data
COPY --from=build /src/target/release/demiurge /usr/local/bin/demiurge
USER demiurge
WORKDIR /data
ENV DEMIURGE_SERVER__DATA_DIR=/data \
    DEMIURGE_EDGE__HTTP=0.0.0.0:8080 \
    DEMIURGE_EDGE__HTTPS=0.0.0.0:8443 \
    DEMIURGE_DNS__LISTEN=0.0.0.0:5353 \
    DEMIURGE_VPN__LISTEN=0.0.0.0:51820
VOLUME ["/data"]
EXPOSE 8080/tcp 8443/tcp 5353/udp 5353/tcp 51820/udp
HEALTHCHECK --interval=30s --timeout=3s CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && grep -q '200 OK' <&3"]
ENTRYPOINT ["/usr/bin/tini", "--", "demiurge"]
CMD ["serve"]
