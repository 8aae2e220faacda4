# One image for every Tether component; the command chooses:
#   tether extractor | mapper | loader | topics provision | replay ... | simulate poweroffice|wix
# Slim, non-root (uid 10001), no shell needed at run time, read-only root filesystem friendly
# (bytecode compiled at build time; /tmp is the only place anything may write).
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md ./
COPY services ./services
RUN python -m venv /opt/tether && /opt/tether/bin/pip install --upgrade pip==25.3 \
 && /opt/tether/bin/pip install .
# The schema registry (every released version, resolved by fingerprint). TETHER_SCHEMAS_DIR points
# the codec here; services.core.records looks next to the installed package (<site-packages>/
# schemas), so that path links here too. The last command fails the build if either is missing.
COPY schemas /opt/tether/schemas
RUN site="$(/opt/tether/bin/python -c 'import pathlib, services; print(pathlib.Path(services.__file__).resolve().parents[1])')" \
 && ln -s /opt/tether/schemas "$site/schemas" \
 && TETHER_SCHEMAS_DIR=/opt/tether/schemas /opt/tether/bin/python -c \
    "from services.core.codec import codec_for; from services.core.records import wrap_record; \
from services.core.settings import TetherSettings; codec_for(TetherSettings.load().schemas_dir); \
wrap_record('wix', 'contacts', {'id': 'build-check'})"

FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 tether \
 && useradd --system --uid 10001 --gid tether --no-create-home --shell /usr/sbin/nologin tether
COPY --from=build /opt/tether /opt/tether
ENV PATH=/opt/tether/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    TETHER_SCHEMAS_DIR=/opt/tether/schemas
WORKDIR /tmp
USER 10001:10001
# extractor 9100, mapper 9101, loader 9102 (each service's default http_port); simulators 8081/8082.
EXPOSE 9100 9101 9102 8081 8082
ENTRYPOINT ["tether"]
CMD ["--help"]
