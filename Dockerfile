# scim-replicator: a slim, non-root image running the replication daemon.
# Build: docker build -t scim-replicator .
# Run:   docker run -v scimrep-state:/var/lib/scim-replicator -e SCIMREP_SOURCE_URL=... scim-replicator

FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY replicator ./replicator
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check .

FROM python:3.12-slim
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SCIMREP_STATE=/var/lib/scim-replicator/state.db \
    SCIMREP_LISTEN=0.0.0.0:8080 \
    SCIMREP_LOG_FORMAT=json
RUN mkdir -p /var/lib/scim-replicator && chown 10001:10001 /var/lib/scim-replicator
USER 10001:10001
VOLUME ["/var/lib/scim-replicator"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 CMD ["scim-replicator", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["scim-replicator"]
CMD ["run"]
