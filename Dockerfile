# tunneltwin: the twin, the optimiser and the control daemon, in one image.
# Build: docker build -t tunneltwin .
# Run the daemon on the embedded twin for a simulated day: docker run --rm tunneltwin
# Beside a plant, config and certificates are mounts:
#   docker run -v /etc/tunneltwin:/config:ro -v tunneltwin-state:/data -p 9108:9108 \
#     -e TUNNELTWIN_DAEMON=/config/daemon.toml tunneltwin run --listen 0.0.0.0:9108 --duration-h 0
#   (daemon.toml names its tag map, certificates, password_file under /config, and [audit] db under /data)
# (the image's own config/ is the reference plant and our simulator's tag maps).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    TUNNELTWIN_SITE=/app/config/site.toml TUNNELTWIN_MPC=/app/config/mpc.toml \
    TUNNELTWIN_DAEMON=/app/config/daemon.toml
WORKDIR /app
COPY pyproject.toml README.md ./
COPY tunneltwin ./tunneltwin
COPY twin ./twin
COPY controller ./controller
COPY adapters ./adapters
COPY scenarios ./scenarios
COPY config ./config
RUN pip install ".[opcua,mqtt]" \
    && useradd --create-home --uid 10001 tunneltwin \
    && mkdir -p /data && chown tunneltwin /data
USER tunneltwin
WORKDIR /data
EXPOSE 9108
# /healthz answers 200 while ticks keep coming (see [daemon] stale_after_s); needs --listen.
HEALTHCHECK --interval=60s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:9108/healthz', timeout=4).status != 200)"]
ENTRYPOINT ["tunneltwin"]
CMD ["run", "--listen", "0.0.0.0:9108", "--out", "/data/run"]
