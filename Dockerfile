# syntax=docker/dockerfile:1
# hooktel container image: `hooktel serve` taking events on 127.0.0.1:4388 (the pod's or the container's own
# loopback) and serving /metrics and /healthz on 0.0.0.0:4389, as a non-root user, data in /var/lib/hooktel.
# Set HOOKTEL_LISTEN=0.0.0.0:4388 to take events from beyond the container: clients must then present the
# token (HOOKTEL_TOKEN, or the `token` file hooktel makes in the data dir). Build from the repository root:  docker build -t hooktel .
# Used by deploy/docker-compose.yml (the local stack) and deploy/kubernetes/ (the sidecar pod).

# The builder is the Debian release of the runtime (bookworm): a binary linked on a newer glibc
# (the plain `rust:1.95` tag follows Debian's newest release) would not start on bookworm-slim.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# the registry and target dir are BuildKit cache mounts: a rebuild after a source change reuses them;
# the binary is copied out of the cache mount into the image layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin hooktel \
    && install -D -m 0755 target/release/hooktel /out/hooktel

FROM debian:bookworm-slim
# the system's CA bundle: https endpoints (hosted backends) are checked against it
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# uid/gid 10001: not a uid a host user usually has. The data directory belongs to group 0 and is
# group-writable, so the image also runs under any other uid with gid 0 (docker-compose runs it as
# your own uid to read your transcripts; OpenShift assigns random uids in group 0).
RUN groupadd --system --gid 10001 hooktel \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/hooktel \
       --shell /usr/sbin/nologin hooktel \
    && install -d -o 10001 -g 0 -m 0770 /var/lib/hooktel
COPY --from=build /out/hooktel /usr/local/bin/hooktel
ENV HOOKTEL_LISTEN=127.0.0.1:4388 \
    HOOKTEL_METRICS_LISTEN=0.0.0.0:4389 \
    HOOKTEL_DATA_DIR=/var/lib/hooktel \
    HOME=/var/lib/hooktel
VOLUME ["/var/lib/hooktel"]
EXPOSE 4389
USER 10001:10001
# bookworm-slim has neither curl nor wget; bash's /dev/tcp speaks enough HTTP for GET /healthz
# (the port follows HOOKTEL_LISTEN). hooktel drains its spools and flushes spans on SIGTERM.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${HOOKTEL_LISTEN##*:} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && IFS= read -r -t 3 status <&3 && [[ $status == *' 200 '* ]]"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/hooktel"]
CMD ["serve"]
