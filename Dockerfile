# One image for every Tether service; the command chooses: `tether extractor|mapper|loader|...`.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md ./
COPY services ./services
RUN python -m venv /opt/tether && /opt/tether/bin/pip install --upgrade pip==25.3 \
 && /opt/tether/bin/pip install .

FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 tether && useradd --system --uid 10001 --gid tether tether
COPY --from=build /opt/tether /opt/tether
COPY schemas /opt/tether-schemas
ENV PATH=/opt/tether/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    TETHER_SCHEMAS_DIR=/opt/tether-schemas
USER 10001:10001
EXPOSE 9100
ENTRYPOINT ["tether"]
CMD ["--help"]
