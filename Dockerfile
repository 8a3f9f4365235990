# The operator's image. Building images is not possible on the project's own machines (no
# container engine); the data centre's CI builds it. Multi-stage: a static build, then a
# minimal non-root runtime with nothing but the binary.
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY crds ./crds
COPY benches ./benches
RUN cargo build --release --locked --bin healthsystem-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/healthsystem-operator /usr/local/bin/healthsystem-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/healthsystem-operator"]
CMD ["run"]
