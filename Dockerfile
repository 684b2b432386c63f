# bertstream: the three binaries against libtorch from the torch==2.11.0 wheel.
#   docker build -t bertstream .                                  # CPU (default)
#   docker build -t bertstream:cuda --build-arg TORCH_VARIANT=cuda .  # CUDA 13 (needs the
#       NVIDIA container toolkit on the host; run the worker with DEVICE=cuda)
ARG TORCH_VARIANT=cpu

FROM rust:1.95-bookworm AS build
ARG TORCH_VARIANT
RUN apt-get update && apt-get install -y --no-install-recommends cmake libcurl4-openssl-dev python3-venv \
    && rm -rf /var/lib/apt/lists/*
# CPU: the wheel without its 3 GB of CUDA libraries (libtorch_cpu needs only these two).
RUN python3 -m venv /opt/venv && if [ "$TORCH_VARIANT" = cuda ]; then \
        /opt/venv/bin/pip install --no-cache-dir torch==2.11.0; \
    else \
        /opt/venv/bin/pip install --no-cache-dir --no-deps torch==2.11.0 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85; \
    fi
ENV LIBTORCH=/opt/venv/lib/python3.11/site-packages/torch
WORKDIR /src
COPY . .
RUN if [ "$TORCH_VARIANT" = cuda ]; then export BERTSTREAM_CUDA=1; fi; \
    cargo build --release -p bertstream-train -p bertstream-worker -p bertstream-producer \
    && cp target/release/bertstream-train target/release/bertstream-worker target/release/bertstream-produce /usr/local/bin/

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl fonts-dejavu-core libcurl4 python3 python3-pip \
    && pip3 install --no-cache-dir --break-system-packages snownlp \
    && rm -rf /var/lib/apt/lists/*
# The binaries' rpath points here: keep the same path as in the build stage.
COPY --from=build /opt/venv/lib/python3.11/site-packages/torch/lib /opt/venv/lib/python3.11/site-packages/torch/lib
COPY --from=build /opt/venv/lib/python3.11/site-packages/nvidia /opt/venv/lib/python3.11/site-packages/nvidia
COPY --from=build /usr/local/bin/bertstream-* /usr/local/bin/
COPY scripts/demo_data.py scripts/docker-train.sh /opt/bertstream/
ENV HTTP_ADDR=0.0.0.0:8080
EXPOSE 8080
CMD ["bertstream-worker", "run"]
