# switchyard: build in the Rust image, run in a slim one.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# Profile-guided by default (scripts/build-pgo): about three times the build time, for about 0.82x
# the CPU per block cycle and 0.88x the latency switchyard adds (BENCHMARKS.md). PGO=0: a plain
# release build.
ARG PGO=1
RUN if [ "$PGO" = 1 ]; then \
        rustup component add llvm-tools && scripts/build-pgo && cp target/pgo/switchyard /switchyard; \
    else \
        cargo build --release --locked --bin switchyard && cp target/release/switchyard /switchyard; \
    fi

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 switchyard
COPY --from=build /switchyard /usr/local/bin/switchyard
USER switchyard
# 8081: op-node's Engine API (and /healthz); 9090: /metrics (and /healthz); 5555: admin.
EXPOSE 8081 9090 5555
ENTRYPOINT ["switchyard"]
