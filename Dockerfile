# Vigil's container image: build in the official Rust image, run in slim Debian.
#
#   docker build -t registry.example/vigil:1.2 .                           # CPU image
#   docker build --build-arg FETCH_PRETRAINED=1 -t registry.example/vigil:1.2 .
#   docker run --rm registry.example/vigil:1.2 launch configs/tiny.yaml
#
# The image is what `vigil render k8s-* --image IMG` expects: `vigil` on the PATH, the
# bundled configs and sample data under /opt/vigil (the working directory), and, with
# FETCH_PRETRAINED=1, the pretrained encoders in /opt/vigil/pretrained
# (VIGIL_PRETRAINED). Runs and exports go to a mounted volume (/vigil in the rendered
# manifests). CI cannot pull base images: it tests the runtime stage only (a debootstrap
# Debian bookworm rootfs with the host-built binary, training configs/tiny.yaml in a
# chroot: scripts/ci/cluster.sh); the builder stage is not built in CI.

# --- build ------------------------------------------------------------------------
# rust-version is 1.92 (Cargo.toml); Debian's own rustc is older.
FROM rust:1.92-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p vigil-launcher \
 && strip target/release/vigil

# --- runtime ----------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime
# ca-certificates for HTTPS object stores; python3-pip only for the optional
# fetch-pretrained step (removed again below).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/vigil /usr/local/bin/vigil
WORKDIR /opt/vigil
COPY configs ./configs
COPY datasets/sample ./datasets/sample
COPY scripts/fetch-pretrained.sh ./scripts/fetch-pretrained.sh
ARG FETCH_PRETRAINED=0
ENV VIGIL_PRETRAINED=/opt/vigil/pretrained
RUN if [ "$FETCH_PRETRAINED" = 1 ]; then \
      apt-get update \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-pip unzip \
      && PIP="python3 -m pip" bash scripts/fetch-pretrained.sh "$VIGIL_PRETRAINED" \
      && apt-get purge -y python3-pip unzip && apt-get autoremove -y && rm -rf /var/lib/apt/lists/* /root/.cache; \
    fi
# The launcher forwards SIGTERM to the workers, which checkpoint; exit 75 = preempted.
STOPSIGNAL SIGTERM
ENTRYPOINT ["vigil"]
CMD ["--help"]
