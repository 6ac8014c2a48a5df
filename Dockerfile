# The service's image: built in one stage, run from a minimal one.
#
#   docker build -t demo-service .
#   docker run --rm -p 5000:5000 -p 8000:8000 demo-service

# --- build --------------------------------------------------------------------------------
# The full image, not -slim: jemalloc's build needs make, which -slim lacks.
FROM rust:1.95-bookworm AS build
WORKDIR /src

# The dependencies first, with placeholder sources: this layer is cached until Cargo.toml or
# Cargo.lock change, so editing the service rebuilds only the service.
# (The benchmarks are declared in Cargo.toml, so cargo wants their files; they are not built.)
COPY Cargo.toml Cargo.lock ./
COPY benches ./benches
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src

# Then the service itself, with the game-day scenarios it ships (compiled in). Touching main.rs
# and lib.rs makes cargo rebuild them over the placeholders, whose timestamps may be newer
# than the copied files'.
COPY src ./src
COPY scenarios ./scenarios
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked \
 && cp target/release/demo-service /demo-service \
 && mkdir /drill

# --- run ----------------------------------------------------------------------------------
# glibc and libgcc, CA certificates, a `nonroot` user (65532), and nothing else: no shell, no
# package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /demo-service /usr/local/bin/demo-service
# Where `scenario drill` and its `answer` meet under compose (the gameday service mounts a
# volume here, which takes this directory's owner the first time): the nonroot user's.
COPY --from=build --chown=65532:65532 /drill /var/lib/demo-service
USER nonroot
# 5000: the app (/, /simulate_error, /metrics). 8000: the metrics listener Prometheus scrapes.
EXPOSE 5000 8000
# No shell or curl here: the binary asks itself (GET /readyz on the metrics listener).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/demo-service", "healthcheck"]
# The service runs as PID 1 and handles SIGTERM itself: `docker stop` drains, then it exits 0.
ENTRYPOINT ["/usr/local/bin/demo-service"]
CMD ["serve"]
