# switchyard: build in the Rust image, run in a slim one.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin switchyard

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 switchyard
COPY --from=build /src/target/release/switchyard /usr/local/bin/switchyard
USER switchyard
# 8081: op-node's Engine API (and /healthz); 9090: /metrics (and /healthz); 5555: admin.
EXPOSE 8081 9090 5555
ENTRYPOINT ["switchyard"]
