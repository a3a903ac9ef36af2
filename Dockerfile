# Dockerfile: Quiver's container image, two stages on Debian 12 (bookworm).
#   docker build -t quiver .                                the CPU image
#   docker build --build-arg CUDA=yes -t quiver:cuda .      with NVIDIA's CUDA libraries
# The build stage installs the Makefile's package list (`make print-deps` prints the list
# `make deps` installs, so the two cannot drift) and builds the release binaries. The
# runtime stage holds only the shared libraries they load, redis-cli (the Helm chart's
# probes run it), quiver-server and the tools, a non-root user (uid 1001) and /data.
#
# CUDA=yes: NVIDIA publishes no Debian-based nvidia/cuda images. The nearest,
# nvidia/cuda:12.4.1-devel-ubuntu22.04 (build) and nvidia/cuda:12.4.1-runtime-ubuntu22.04
# (run), are Ubuntu, whose package names and versions differ from the Makefile's list; so
# both stages stay on bookworm and add NVIDIA's CUDA repository for Debian 12 (where those
# images get their CUDA packages): nvcc and cuBLAS to build, the CUDA runtime and cuBLAS
# to run. The Makefile builds the CUDA parts itself where it finds nvcc under CUDA_HOME.
# The host needs the NVIDIA driver and Container Toolkit (`docker run --gpus all`).
#
# Written without docker at hand: never built here. tests/integration/test_container.py
# checks what can be checked without docker (the package names exist; the runtime list
# covers every library the server and tools load).
ARG CUDA=no
ARG CUDA_VERSION=12.4

# ---- base: Debian 12, plus NVIDIA's CUDA repository when CUDA=yes ----
FROM debian:bookworm AS base
ARG CUDA
ENV DEBIAN_FRONTEND=noninteractive
RUN case "$CUDA" in \
      no) ;; \
      yes) apt-get update && \
           apt-get install -y --no-install-recommends ca-certificates curl && \
           curl -fsSL -o /tmp/cuda-keyring.deb \
             https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/cuda-keyring_1.1-1_all.deb && \
           dpkg -i /tmp/cuda-keyring.deb && rm /tmp/cuda-keyring.deb && \
           apt-get purge -y curl && apt-get autoremove -y && rm -rf /var/lib/apt/lists/* ;; \
      *) echo "CUDA must be yes or no, not '$CUDA'" >&2; exit 1 ;; \
    esac

# ---- build: the Makefile's packages, then make ----
FROM base AS build
ARG CUDA
ARG CUDA_VERSION
WORKDIR /src
COPY Makefile ./
RUN apt-get update && \
    apt-get install -y --no-install-recommends make && \
    apt-get install -y --no-install-recommends $(make -s print-deps) && \
    if [ "$CUDA" = yes ]; then \
      v=$(echo "$CUDA_VERSION" | tr . -) && \
      apt-get install -y --no-install-recommends cuda-nvcc-$v cuda-cudart-dev-$v libcublas-dev-$v; \
    fi && \
    rm -rf /var/lib/apt/lists/*
COPY . .
RUN make -j"$(nproc)" quiver-server quiver-load quiver-join CUDA_HOME=/usr/local/cuda-$CUDA_VERSION && \
    mkdir -p gpu-lib && if [ -f build/gpu/libquivergpu.so ]; then cp build/gpu/libquivergpu.so gpu-lib/; fi

# ---- runtime ----
FROM base AS runtime
ARG CUDA
ARG CUDA_VERSION
# What quiver-server and the tools load (ldd): libevent (the loop, the metrics endpoint),
# LMDB, RocksDB, hiredis, OpenSSL, and FAISS's OpenMP, BLAS and LAPACK (FAISS itself is
# linked in statically). Their own dependencies come with them.
RUN apt-get update && \
    apt-get install -y --no-install-recommends \
      libevent-2.1-7 liblmdb0 librocksdb7.8 libhiredis0.14 libssl3 \
      libgomp1 libblas3 liblapack3 libstdc++6 \
      redis-tools && \
    if [ "$CUDA" = yes ]; then \
      v=$(echo "$CUDA_VERSION" | tr . -) && \
      apt-get install -y --no-install-recommends cuda-cudart-$v libcublas-$v; \
    fi && \
    rm -rf /var/lib/apt/lists/*
# Where NVIDIA's packages put the CUDA libraries (absent, and so unused, in the CPU image);
# the driver's own libraries come from the Container Toolkit at run time.
ENV LD_LIBRARY_PATH=/usr/local/cuda-$CUDA_VERSION/lib64 \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
COPY --from=build /src/quiver-server /src/quiver-load /src/quiver-join /usr/local/bin/
# CUDA=yes: index/gpu's library, which quiver-server loads from beside itself (empty otherwise).
COPY --from=build /src/gpu-lib/ /usr/local/bin/
RUN groupadd --system --gid 1001 quiver && \
    useradd --system --uid 1001 --gid 1001 --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin quiver && \
    mkdir -p /data && chown 1001:1001 /data
USER 1001:1001
WORKDIR /data
VOLUME /data
# 6379: RESP clients and replicas; 9121: GET /metrics, when metrics-port 9121 is set.
EXPOSE 6379 9121
ENTRYPOINT ["quiver-server"]
# Defaults for a bare `docker run`; any arguments replace them all (a config file path,
# or --name value options). protected-mode is off because clients come from outside the
# container: set requirepass (or an ACL file) before exposing the port.
CMD ["--bind", "0.0.0.0", "--port", "6379", "--dir", "/data", "--protected-mode", "no", \
     "--metrics-port", "9121"]
