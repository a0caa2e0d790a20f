# The studio's image: built from this repository and PyPI only (no other registry, no download at run time).
# `docker build --build-arg PADDLE=gpu` swaps in the CUDA build of Paddle for GPU hosts.
FROM python:3.11-slim

ARG PADDLE=cpu
ARG PADDLE_GPU_INDEX=https://www.paddlepaddle.org.cn/packages/stable/cu126/
# HOST names the address the CMD's gunicorn binds (gunicorn.conf.py binds HOST:PORT, PORT 5000 unless set), so the
# studio knows it is reachable from other machines and turns sign-in on (a server that listens wider than HOST
# refuses requests while sign-in is off).
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    DATA_DIR=/data PADDLE_WEIGHTS_DIR=/data/weights HOST=0.0.0.0

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
RUN pip install . \
    && if [ "$PADDLE" = "gpu" ]; then \
         pip uninstall --yes paddlepaddle && \
         pip install --no-deps --index-url "$PADDLE_GPU_INDEX" "$(grep -o 'paddlepaddle-gpu==[0-9.]*' setup.cfg)"; \
       fi \
    && chown -R studio /app/translations

USER studio
VOLUME /data
EXPOSE 5000
CMD ["gunicorn", "--config", "gunicorn.conf.py"]
