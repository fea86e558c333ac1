# tunneltwin: the twin, the optimiser and the control daemon, in one image.
# Build: docker build -t tunneltwin .
# Run the daemon on the embedded twin for a simulated day: docker run --rm tunneltwin
# Beside a plant, config and certificates are mounts:
#   docker run -v /etc/tunneltwin:/config:ro -v tunneltwin-state:/data -p 9108:9108 \
#     -e TUNNELTWIN_DAEMON=/config/daemon.toml -e TUNNELTWIN_SITE=/config/site.toml \
#     tunneltwin run --listen 0.0.0.0:9108 --duration-h 0
#   (daemon.toml names its tag map, certificates, password_file under /config, and [audit] db under /data)
# Without those variables the packaged defaults are used: the reference plant and our simulator.
# Dependencies come from deploy/requirements.lock (hash-pinned; regenerate with
#   uv pip compile pyproject.toml --extra opcua --extra mqtt --extra http --python-version 3.11 \
#     --python-platform x86_64-manylinux_2_28 --generate-hashes --no-header --annotation-style line \
#     -o deploy/requirements.lock
# ), so two builds of one commit install the same packages.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/tunneltwin
COPY deploy/requirements.lock ./
RUN /opt/tunneltwin/bin/pip install --require-hashes --requirement requirements.lock
COPY pyproject.toml README.md LICENSE ./
COPY kernel ./kernel
COPY twin ./twin
COPY controller ./controller
COPY adapters ./adapters
COPY scenarios ./scenarios
COPY tunneltwin ./tunneltwin
COPY config ./config
# our own package only: every dependency is already in from the lock
RUN /opt/tunneltwin/bin/pip install --no-deps /src

FROM python:3.11-slim
ARG VERSION=dev
LABEL org.opencontainers.image.title="tunneltwin" \
      org.opencontainers.image.description="Digital twin and receding-horizon control daemon for wastewater pump stations" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/tunneltwin/bin:$PATH
COPY --from=build /opt/tunneltwin /opt/tunneltwin
RUN useradd --no-create-home --uid 10001 --user-group tunneltwin \
    && mkdir -p /data && chown 10001:10001 /data
USER 10001:10001
WORKDIR /data
EXPOSE 9108
# /healthz answers 200 while ticks keep coming (see [daemon] stale_after_s); needs --listen.
HEALTHCHECK --interval=60s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:9108/healthz', timeout=4).status != 200)"]
ENTRYPOINT ["tunneltwin"]
CMD ["run", "--listen", "0.0.0.0:9108", "--out", "/data/run"]
