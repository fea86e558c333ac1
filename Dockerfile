# tunneltwin: the twin, the optimiser and (later) the daemon, in one image.
# Build: docker build -t tunneltwin .
# Run the bundled demo: docker run --rm -v "$PWD/out:/data" tunneltwin
# Config is a mount: -v /etc/tunneltwin:/config:ro -e TUNNELTWIN_SITE=/config/site.toml
# (the image's own config/ is the reference plant).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    TUNNELTWIN_SITE=/app/config/site.toml TUNNELTWIN_MPC=/app/config/mpc.toml
WORKDIR /app
COPY pyproject.toml README.md ./
COPY tunneltwin ./tunneltwin
COPY twin ./twin
COPY controller ./controller
COPY adapters ./adapters
COPY scenarios ./scenarios
COPY config ./config
RUN pip install . \
    && useradd --create-home --uid 10001 tunneltwin \
    && mkdir -p /data && chown tunneltwin /data
USER tunneltwin
WORKDIR /data
ENTRYPOINT ["tunneltwin"]
CMD ["replay", "dry-week", "--controller", "mpc", "--out", "/data/dry-week"]
