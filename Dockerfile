# tunneltwin: the twin, the optimiser and the control daemon, in one image.
# Build: docker build -t tunneltwin .
# Run the daemon on the embedded twin for a simulated day: docker run --rm tunneltwin
# Beside a plant, config and certificates are mounts:
#   docker run -v /etc/tunneltwin:/config:ro -e TUNNELTWIN_DAEMON=/config/daemon.toml tunneltwin run
#   (daemon.toml names its tag map, certificates and password_file under /config)
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
ENTRYPOINT ["tunneltwin"]
CMD ["run", "--out", "/data/run"]
