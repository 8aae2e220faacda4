# One image for every Tether component; the command chooses:
#   tether extractor | mapper | loader | topics provision | replay ... | simulate poweroffice|wix
# Slim, non-root (uid 10001), no shell needed at run time, read-only root filesystem friendly
# (bytecode compiled at build time; /tmp is the only place anything may write).
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# Dependencies first, from the lock file with hashes (a changed hash fails the build), then the
# package itself without resolving anything again. The wheel carries the Avro schemas
# (services/core/schemas links to schemas/) and the dataflow files (services/mapper/dataflows
# links to dataflows/), so the last command fails the build without them.
COPY requirements.lock ./
RUN python -m venv /opt/tether && /opt/tether/bin/pip install --upgrade pip==25.3 \
 && /opt/tether/bin/pip install --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY dataflows ./dataflows
COPY services ./services
RUN /opt/tether/bin/pip install --no-deps . \
 && cd /tmp && /opt/tether/bin/python -c \
    "from services.core.codec import default_codec; from services.core.records import wrap_record; \
default_codec(); wrap_record('wix', 'contacts', {'id': 'build-check'}); \
from services.mapper.dataflow_file import DEFAULT_DATAFLOW_FILE, load_dataflow; \
load_dataflow(DEFAULT_DATAFLOW_FILE)"

FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 tether \
 && useradd --system --uid 10001 --gid tether --no-create-home --shell /usr/sbin/nologin tether
COPY --from=build /opt/tether /opt/tether
ENV PATH=/opt/tether/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /tmp
USER 10001:10001
# extractor 9100, mapper 9101, loader 9102, verify 9103, console 9104 (each default http_port:
# metrics, probes); public ports (public_port): extractor 9180 (Wix webhook), mapper 9181
# (/explain), console 9184 (API and pages); simulators 8081/8082.
EXPOSE 9100 9101 9102 9103 9104 9180 9181 9184 8081 8082
ENTRYPOINT ["tether"]
CMD ["--help"]
