# The studio's image: built from this repository and PyPI (no download at run time). `--build-arg PADDLE=gpu` makes
# the CUDA image for GPU hosts: Paddle's CUDA wheel from Paddle's index, with the CUDA libraries (runtime, cuDNN,
# cuBLAS, NCCL...) as nvidia-* wheels from PyPI, which Paddle loads from site-packages/nvidia/; so the slim base
# serves both and the host needs only the NVIDIA driver and container toolkit. `--build-arg TENSORRT=1` adds
# TensorRT to it (about 2 GB, from NVIDIA's index). deploy/paddle_build.py is the route, as for `make install`.
FROM python:3.11-slim

ARG PADDLE=cpu
ARG TENSORRT=0
# Empty: deploy/paddle_build.py's defaults (Paddle's CUDA 12.6 index, NVIDIA's index).
ARG PADDLE_GPU_INDEX
ARG TENSORRT_INDEX
# HOST names the address the CMD's gunicorn binds (gunicorn.conf.py binds HOST:PORT, PORT 5000 unless set), so the
# studio knows it is reachable from other machines and turns sign-in on (a server that listens wider than HOST
# refuses requests while sign-in is off).
# NVIDIA_DRIVER_CAPABILITIES: without it the NVIDIA runtime mounts only the driver's utility part (nvidia-smi), not
# libcuda, unless the run names the capabilities itself (CUDA base images set it; this slim base does not).
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    DATA_DIR=/data PADDLE_WEIGHTS_DIR=/data/weights HOST=0.0.0.0 NVIDIA_DRIVER_CAPABILITIES=compute,utility

RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 libglib2.0-0 bubblewrap \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 studio && mkdir -p /data && chown studio /data

WORKDIR /app
COPY setup.cfg pyproject.toml README.md ./
COPY engine engine
COPY webapp webapp
COPY worker worker
COPY launcher.py app.py gunicorn.conf.py babel.cfg ./
COPY templates templates
COPY static static
COPY migrations migrations
COPY translations translations
COPY deploy/paddle_build.py deploy/
RUN python deploy/paddle_build.py "$PADDLE" --project . $([ "$TENSORRT" = 1 ] && echo --tensorrt) \
    && chown -R studio /app/translations

USER studio
VOLUME /data
EXPOSE 5000
CMD ["gunicorn", "--config", "gunicorn.conf.py"]
