#!/usr/bin/env python3
"""Start and stop the local infrastructure Tether runs on: Apache Kafka (KRaft) and PostgreSQL.

Used by ``make test``, ``make demo`` and people (``make infra-up`` / ``make infra-down``).
Standard library only: it runs before the project's virtualenv exists.

- **Kafka**: a pinned Apache Kafka release resolved from Maven Central with Maven
  (``org.apache.kafka:kafka_2.13`` and its runtime dependencies) into a cache outside the
  repository (``$TETHER_CACHE_DIR``, default ``~/.cache/tether``), storage formatted for KRaft,
  a single combined broker/controller on loopback.
- **PostgreSQL**: Debian's server packages (installed with apt-get when missing and running as
  root), ``initdb`` in a temporary data directory, loopback port, trust auth for the local user.
- **Headless Chromium** for the console's browser test and the demo's screenshots: Debian's
  ``chromium`` and ``chromium-driver`` packages (``/usr/bin/chromium``, ``/usr/bin/chromedriver``),
  installed with apt-get when missing, like PostgreSQL's; nothing is downloaded by a pip package.

State lives in ``$TETHER_INFRA_DIR`` (default ``/tmp/tether-infra``): data directories, logs,
pid files and ``env`` — the connection settings as ``KEY=value`` lines that the Makefile exports
to everything (tests, demo, services). ``up`` reuses servers that are already running.

    python3 scripts/infra.py up      # start (or reuse) Kafka and PostgreSQL, print the env
    python3 scripts/infra.py env     # print the env of the running infrastructure
    python3 scripts/infra.py status  # say what runs
    python3 scripts/infra.py browser # install headless Chromium + chromedriver (``up`` does too)
    python3 scripts/infra.py down    # stop both and delete their data
    python3 scripts/infra.py kafka-stop|kafka-start|postgres-stop|postgres-start
                                     # outage tests: stop/start one, keeping its data
    python3 scripts/infra.py kafka-kill|postgres-kill   # kill -9, keeping the data (chaos)
    TETHER_POSTGRES_DURABLE=1 python3 scripts/infra.py up  # PostgreSQL with fsync on (chaos)
    TETHER_INFRA_TLS=1 python3 scripts/infra.py up  # + TLS: see "TLS" below

**TLS** (``TETHER_INFRA_TLS=1``, for the security tests): a throwaway CA and server/client
certificates made with ``openssl`` in ``$TETHER_INFRA_DIR/tls``; Kafka gets a second listener,
``SASL_SSL`` on ``$TETHER_KAFKA_SECURE_PORT`` (default: Kafka's port + 2) with SCRAM-SHA-512 and
PLAIN for the user ``tether`` (its random password in ``tls/kafka-password``; SCRAM credentials
created by ``kafka-storage format --add-scram``), client certificates requested (mTLS optional);
PostgreSQL gets ``ssl=on`` with the server certificate (SAN ``127.0.0.1``/``localhost``), so
``sslmode=verify-full`` with ``sslrootcert=tls/ca.pem`` works. ``up`` then also prints
``TETHER_INFRA_KAFKA_SASL_SSL=host:port`` and ``TETHER_INFRA_TLS_DIR``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

KAFKA_VERSION = "3.9.1"
SCALA_VERSION = "2.13"
SLF4J_BINDING = "org.slf4j:slf4j-reload4j:1.7.36"

CACHE_DIR = Path(os.environ.get("TETHER_CACHE_DIR", Path.home() / ".cache" / "tether"))
INFRA_DIR = Path(os.environ.get("TETHER_INFRA_DIR", "/tmp/tether-infra"))
KAFKA_PORT = int(os.environ.get("TETHER_KAFKA_PORT", "19092"))
KAFKA_CONTROLLER_PORT = int(os.environ.get("TETHER_KAFKA_CONTROLLER_PORT", "19093"))
POSTGRES_PORT = int(os.environ.get("TETHER_POSTGRES_PORT", "15432"))
POSTGRES_DURABLE = os.environ.get("TETHER_POSTGRES_DURABLE", "") not in ("", "0")
POSTGRES_DB = "tether"
POSTGRES_USER = "tether"
TLS = os.environ.get("TETHER_INFRA_TLS", "") not in ("", "0")
KAFKA_SECURE_PORT = int(os.environ.get("TETHER_KAFKA_SECURE_PORT", str(KAFKA_PORT + 2)))
KAFKA_SASL_USER = "tether"


def log(message: str) -> None:
    print(f"[infra] {message}", file=sys.stderr, flush=True)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_for(predicate, what: str, timeout: float, log_file: Path | None = None) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    tail = ""
    if log_file is not None and log_file.exists():
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-30:])
    raise SystemExit(f"[infra] {what} did not come up within {timeout:.0f}s\n{tail}")


def pid_alive(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None
    return pid


def stop_pid(pid_file: Path, name: str, timeout: float = 30.0) -> None:
    pid = pid_alive(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return
    log(f"stopping {name} (pid {pid})")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        log(f"{name} ignored SIGTERM for {timeout:.0f}s; killing it")
        os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    """Run a tool; what it prints goes to standard error, never to our standard output.

    Standard output of ``up``/``env`` carries only ``KEY=value`` lines for ``with-infra.sh``; Maven,
    for one, writes ANSI reset codes to standard output even with ``-q -B``."""
    kwargs.setdefault("stdout", sys.stderr)
    if cmd and cmd[0] == "runuser":
        kwargs.setdefault("cwd", "/")  # the postgres user may not enter the caller's directory
    return subprocess.run(cmd, check=True, text=True, **kwargs)


class stdout_to_stderr:  # noqa: N801 - used as a statement-like context manager
    """Point file descriptor 1 at standard error while the block runs (children inherit it).

    ``run`` already sends each tool's output to standard error; this also covers anything a tool
    started some other way, or a future ``subprocess`` call, might print. ``emit`` writes to the
    real standard output."""

    def __enter__(self) -> stdout_to_stderr:
        sys.stdout.flush()
        self._saved = os.dup(1)
        os.dup2(2, 1)
        return self

    def emit(self, text: str) -> None:
        os.write(self._saved, text.encode())

    def __exit__(self, *exc: object) -> None:
        sys.stdout.flush()
        os.dup2(self._saved, 1)
        os.close(self._saved)


# --------------------------------------------------------------------------------------------
# Kafka


def kafka_libs() -> Path:
    """Resolve the pinned Kafka release and its runtime dependencies from Maven Central (cached)."""
    home = CACHE_DIR / f"kafka-{SCALA_VERSION}-{KAFKA_VERSION}"
    libs = home / "libs"
    marker = home / ".complete"
    if marker.exists():
        return libs
    if shutil.which("java") is None or shutil.which("mvn") is None:
        apt_install(["default-jre-headless", "maven"])
    home.mkdir(parents=True, exist_ok=True)
    group, artifact, version = SLF4J_BINDING.split(":")
    (home / "pom.xml").write_text(
        f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.tether</groupId><artifactId>kafka-runtime</artifactId>
  <version>1</version><packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_{SCALA_VERSION}</artifactId>
      <version>{KAFKA_VERSION}</version></dependency>
    <dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>
      <version>{version}</version></dependency>
  </dependencies>
</project>
"""
    )
    log(f"resolving Apache Kafka {KAFKA_VERSION} from Maven Central into {libs}")
    shutil.rmtree(libs, ignore_errors=True)
    run(
        [
            "mvn",
            "-q",
            "-B",
            f"-Dmaven.repo.local={CACHE_DIR / 'm2'}",
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={libs}",
        ],
        cwd=home,
    )
    if not glob.glob(str(libs / f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}.jar")):
        raise SystemExit("[infra] Maven finished but the Kafka jar is missing")
    marker.write_text(KAFKA_VERSION)
    return libs


def kafka_properties(kdir: Path) -> list[str]:
    """The broker's server.properties: PLAINTEXT on loopback (+ SASL_SSL with ``TLS``)."""
    listeners = [f"PLAINTEXT://127.0.0.1:{KAFKA_PORT}"]
    protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
    secure: list[str] = []
    if TLS:
        tls = make_tls_material()
        password = (tls / "kafka-password").read_text().strip()
        listeners.append(f"SASL_SSL://127.0.0.1:{KAFKA_SECURE_PORT}")
        protocols.append("SASL_SSL:SASL_SSL")
        secure = [
            "sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "listener.name.sasl_ssl.plain.sasl.jaas.config="
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'user_{KAFKA_SASL_USER}="{password}";',
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={tls / 'kafka-keystore.pem'}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={tls / 'ca.pem'}",
            "ssl.client.auth=requested",
        ]
    return [
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@127.0.0.1:{KAFKA_CONTROLLER_PORT}",
        f"listeners={','.join(listeners)},CONTROLLER://127.0.0.1:{KAFKA_CONTROLLER_PORT}",
        f"advertised.listeners={','.join(listeners)}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        f"listener.security.protocol.map={','.join(protocols)}",
        *secure,
        f"log.dirs={kdir / 'data'}",
        # Topics are provisioned by Tether itself with explicit settings (DESIGN.md).
        "auto.create.topics.enable=false",
        "num.partitions=1",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=10",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        "log.flush.interval.messages=9223372036854775807",
        # Deleted topics (the tests delete theirs) give their files back at once.
        "file.delete.delay.ms=1000",
    ]


def kafka_scram_arguments() -> list[str]:
    """``kafka-storage format`` arguments creating the SCRAM user (KRaft keeps it in metadata)."""
    if not TLS:
        return []
    password = (tls_dir() / "kafka-password").read_text().strip()
    return ["--add-scram", f"SCRAM-SHA-512=[name={KAFKA_SASL_USER},password={password}]"]


def kraft_cluster_id(random_bytes=lambda: uuid.uuid4().bytes) -> str:  # type: ignore[no-untyped-def]
    """A random KRaft cluster id: 16 bytes, URL-safe base64 without padding.

    Like Kafka's own ``Uuid.randomUuid``, never one that starts with ``-``: ``kafka-storage
    format -t <id>`` would read it as an option and fail (1 start in 64 failed that way).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(random_bytes()).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def kafka_up() -> str:
    bootstrap = f"127.0.0.1:{KAFKA_PORT}"
    kdir = INFRA_DIR / "kafka"
    pid_file = kdir / "kafka.pid"
    if pid_alive(pid_file) and port_open(KAFKA_PORT):
        log(f"Kafka already running on {bootstrap}")
        return bootstrap
    if port_open(KAFKA_PORT):
        raise SystemExit(f"[infra] port {KAFKA_PORT} is taken by something that is not our Kafka")
    kafka_libs()  # resolved (and cached) before anything is deleted
    shutil.rmtree(kdir, ignore_errors=True)
    (kdir / "data").mkdir(parents=True)
    props = kdir / "server.properties"
    props.write_text("\n".join([*kafka_properties(kdir), ""]))
    (kdir / "log4j.properties").write_text(
        "log4j.rootLogger=WARN, stdout\n"
        "log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
        "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
        "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
        "log4j.logger.kafka.server.KafkaServer=INFO\n"
        "log4j.logger.kafka.server.BrokerServer=INFO\n"
    )
    java = _kafka_java(kdir)
    cluster_id = kraft_cluster_id()
    log("formatting KRaft storage")
    run(
        [
            *java,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(props),
            *kafka_scram_arguments(),
        ],
        stdout=subprocess.DEVNULL,
    )
    log_file = kdir / "kafka.log"
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(
            [*java, "kafka.Kafka", str(props)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    pid_file.write_text(str(proc.pid))
    log(f"starting Kafka {KAFKA_VERSION} (pid {proc.pid}) on {bootstrap}")
    wait_for(lambda: port_open(KAFKA_PORT), "Kafka", 90, log_file)
    return bootstrap


# --------------------------------------------------------------------------------------------
# TLS material (TETHER_INFRA_TLS=1): a throwaway CA, a server and a client certificate


def tls_dir() -> Path:
    return INFRA_DIR / "tls"


def make_tls_material() -> Path:
    """CA, server (SAN 127.0.0.1, localhost) and client certificates, valid for two days."""
    tls = tls_dir()
    if (tls / "kafka-keystore.pem").exists():
        return tls
    if shutil.which("openssl") is None:
        apt_install(["openssl"])
    tls.mkdir(parents=True, exist_ok=True)
    log(f"making a throwaway CA and certificates in {tls}")
    run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(tls / "ca.key"), "-out", str(tls / "ca.pem"),
            "-subj", "/CN=Tether local test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    extensions = {
        "server": "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        "client": "extendedKeyUsage=clientAuth\n",
    }
    for name, extension in extensions.items():
        (tls / f"{name}.ext").write_text(extension)
        run(
            [
                "openssl", "req", "-newkey", "rsa:2048", "-nodes",
                "-keyout", str(tls / f"{name}.key"), "-out", str(tls / f"{name}.csr"),
                "-subj", f"/CN=tether-{name}",
            ],
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        run(
            [
                "openssl", "x509", "-req", "-days", "2", "-in", str(tls / f"{name}.csr"),
                "-CA", str(tls / "ca.pem"), "-CAkey", str(tls / "ca.key"), "-CAcreateserial",
                "-out", str(tls / f"{name}.pem"), "-extfile", str(tls / f"{name}.ext"),
            ],
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
    # Kafka's PEM key store: the unencrypted PKCS#8 key, then the certificate.
    pkcs8 = subprocess.run(
        ["openssl", "pkcs8", "-topk8", "-nocrypt", "-in", str(tls / "server.key")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    (tls / "kafka-keystore.pem").write_text(pkcs8 + (tls / "server.pem").read_text())
    (tls / "kafka-password").write_text(secrets.token_urlsafe(18) + "\n")
    return tls


def postgres_tls_options(pdir: Path) -> str:
    """``ssl=on`` with a copy of the server certificate PostgreSQL may read (mode 600, its own)."""
    if not TLS:
        return ""
    tls = make_tls_material()
    for name in ("server.pem", "server.key"):
        shutil.copy(tls / name, pdir / name)
        os.chmod(pdir / name, 0o600)
        if os.geteuid() == 0:
            shutil.chown(pdir / name, "postgres", "postgres")
    return (
        f" -c ssl=on -c ssl_cert_file={pdir / 'server.pem'} -c ssl_key_file={pdir / 'server.key'}"
    )


# --------------------------------------------------------------------------------------------
# Headless Chromium (the console's browser test, the demo's screenshots)

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def browser_binaries() -> tuple[Path, Path]:
    """Debian's Chromium and its WebDriver, installed once (apt keeps them) when missing."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        apt_install(["chromium", "chromium-driver"])
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        raise SystemExit(f"[infra] {CHROMIUM} or {CHROMEDRIVER} missing after install")
    return CHROMIUM, CHROMEDRIVER


def cmd_browser() -> None:
    with stdout_to_stderr():
        chromium, driver = browser_binaries()
    log(f"headless browser ready: {chromium}, {driver}")


# --------------------------------------------------------------------------------------------
# PostgreSQL


def apt_install(packages: list[str]) -> None:
    if os.geteuid() != 0:
        raise SystemExit(f"[infra] please install {' '.join(packages)} (needs root)")
    log(f"installing {' '.join(packages)} from Debian's packages")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-qq"], env=env, stdout=subprocess.DEVNULL)
    run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
        env=env,
        stdout=subprocess.DEVNULL,
    )


def postgres_bindir() -> Path:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if not found:
        apt_install(["postgresql"])
        found = sorted(
            glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
        )
    if not found:
        raise SystemExit("[infra] PostgreSQL server binaries not found after install")
    return Path(found[-1]).parent


def as_postgres_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: drop to the ``postgres`` system user when we are root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def postgres_options(pdir: Path) -> str:
    """The server options: durable (``fsync``, ``synchronous_commit``, full page writes on) when
    ``TETHER_POSTGRES_DURABLE=1`` (the chaos suite kills it with -9 and must lose nothing it
    acknowledged); otherwise fsync off, for a test/demo database in a temporary directory — never
    use those flags in production."""
    durability = (
        " -c fsync=on -c synchronous_commit=on -c full_page_writes=on"
        if POSTGRES_DURABLE
        else " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    return (
        f"-c listen_addresses=127.0.0.1 -c port={POSTGRES_PORT} -c unix_socket_directories={pdir}"
        f"{durability} -c max_connections=200{postgres_tls_options(pdir)}"
    )


def postgres_dir() -> Path:
    """Where PostgreSQL's data directory, socket and log live (see ``place_postgres_dir``)."""
    pointer = INFRA_DIR / "postgres.location"
    if pointer.exists():
        return Path(pointer.read_text().strip())
    return INFRA_DIR / "postgres"


def reachable_by_postgres(path: Path) -> bool:
    """Can the ``postgres`` user write ``path`` (so every parent directory lets it through)?"""
    probe = subprocess.run(
        as_postgres_user(["test", "-w", str(path)]), stdout=sys.stderr, check=False, cwd="/"
    )
    return probe.returncode == 0


def place_postgres_dir() -> Path:
    """A fresh directory for PostgreSQL that the ``postgres`` user can use.

    As root, ``initdb`` runs as ``postgres``, which must be able to enter every parent of its data
    directory. ``$TETHER_INFRA_DIR`` may lie under a private directory (``mktemp -d`` makes them
    mode 700), and changing the permissions of someone else's parent directory is not ours to do;
    so PostgreSQL's part then goes to a fresh directory in the system temporary directory, and
    ``$TETHER_INFRA_DIR/postgres.location`` remembers where (``down`` removes it)."""
    pointer = INFRA_DIR / "postgres.location"
    pointer.unlink(missing_ok=True)
    pdir = INFRA_DIR / "postgres"
    pdir.mkdir(parents=True)
    if os.geteuid() != 0:
        return pdir
    shutil.chown(pdir, "postgres", "postgres")
    if reachable_by_postgres(pdir):
        return pdir
    pdir.rmdir()
    for base in dict.fromkeys([tempfile.gettempdir(), "/tmp", "/var/tmp"]):
        candidate = Path(tempfile.mkdtemp(prefix="tether-postgres-", dir=base))
        shutil.chown(candidate, "postgres", "postgres")
        if reachable_by_postgres(candidate):
            pointer.write_text(f"{candidate}\n")
            log(
                f"the postgres user cannot enter {INFRA_DIR} (a parent directory is private);"
                f" PostgreSQL's data goes to {candidate}"
            )
            return candidate
        candidate.rmdir()
    raise SystemExit(
        f"[infra] the postgres user can enter neither {INFRA_DIR} nor a temporary directory:"
        " set TETHER_INFRA_DIR to a directory whose parents are world-searchable (e.g. /tmp/tether)"
    )


def postgres_up() -> str:
    dsn = f"postgresql://{POSTGRES_USER}@127.0.0.1:{POSTGRES_PORT}/{POSTGRES_DB}"
    pdir = postgres_dir()
    data = pdir / "data"
    if data.exists() and port_open(POSTGRES_PORT):
        log(f"PostgreSQL already running on port {POSTGRES_PORT}")
        return dsn
    if port_open(POSTGRES_PORT):
        raise SystemExit(f"[infra] port {POSTGRES_PORT} is taken by something that is not ours")
    bindir = postgres_bindir()
    shutil.rmtree(pdir, ignore_errors=True)
    pdir = place_postgres_dir()
    data = pdir / "data"
    pid_file = data / "postmaster.pid"
    log(f"initdb in {data}")
    run(
        as_postgres_user(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                POSTGRES_USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ]
        ),
        stdout=subprocess.DEVNULL,
    )
    log_file = pdir / "postgres.log"
    options = postgres_options(pdir)
    run(
        as_postgres_user(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(log_file),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ]
        ),
        stdout=subprocess.DEVNULL,
    )
    run(
        as_postgres_user(
            [
                str(bindir / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(POSTGRES_PORT),
                "-U",
                POSTGRES_USER,
                POSTGRES_DB,
            ]
        )
    )
    if not pid_file.exists():
        raise SystemExit("[infra] PostgreSQL started but wrote no pid file")
    log(f"PostgreSQL running on port {POSTGRES_PORT}")
    return dsn


def postgres_down() -> None:
    data = postgres_dir() / "data"
    if not data.exists():
        return
    bindir = postgres_bindir()
    if (data / "postmaster.pid").exists():
        log("stopping PostgreSQL")
        subprocess.run(
            as_postgres_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


# --------------------------------------------------------------------------------------------
# Stop / start keeping the data (fault tests: a broker or database outage and its recovery)
#
# ``kafka-stop``/``postgres-stop`` stop the server of ``$TETHER_INFRA_DIR`` and keep its data;
# ``kafka-start``/``postgres-start`` start it again on the same port and data directory (after
# ``up`` created them). Never point them at an infrastructure other people's tests use.


def _kafka_java(kdir: Path) -> list[str]:
    return [
        "java",
        "-Xms256m",
        "-Xmx768m",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j.configuration=file:{kdir / 'log4j.properties'}",
        "-cp",
        f"{kafka_libs()}/*",
    ]


def cmd_kafka_stop() -> None:
    stop_pid(INFRA_DIR / "kafka" / "kafka.pid", "Kafka")
    wait_for(lambda: not port_open(KAFKA_PORT), "Kafka's port closing", 30)


def cmd_kafka_start() -> None:
    kdir = INFRA_DIR / "kafka"
    props = kdir / "server.properties"
    if not props.exists():
        raise SystemExit("[infra] no Kafka here to start: run 'up' first")
    if pid_alive(kdir / "kafka.pid") and port_open(KAFKA_PORT):
        log("Kafka already running")
        return
    log_file = kdir / "kafka.log"
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(
            [*_kafka_java(kdir), "kafka.Kafka", str(props)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    (kdir / "kafka.pid").write_text(str(proc.pid))
    log(f"starting Kafka again (pid {proc.pid}) with its data in {kdir / 'data'}")
    wait_for(lambda: port_open(KAFKA_PORT), "Kafka", 90, log_file)


def _pg_ctl(*args: str) -> list[str]:
    data = postgres_dir() / "data"
    if not data.exists():
        raise SystemExit("[infra] no PostgreSQL here: run 'up' first")
    return as_postgres_user([str(postgres_bindir() / "pg_ctl"), "-D", str(data), *args])


def cmd_postgres_stop() -> None:
    # -m fast: clients are disconnected at once, as in a crash or failover of the server.
    run(_pg_ctl("-m", "fast", "-w", "stop"), stdout=subprocess.DEVNULL)


def cmd_postgres_start() -> None:
    if port_open(POSTGRES_PORT):
        log("PostgreSQL already running")
        return
    pdir = postgres_dir()
    options = postgres_options(pdir)  # the options of postgres_up
    run(
        _pg_ctl("-l", str(pdir / "postgres.log"), "-o", options, "-w", "-t", "60", "start"),
        stdout=subprocess.DEVNULL,
    )
    log(f"PostgreSQL running again on port {POSTGRES_PORT}")


# --------------------------------------------------------------------------------------------


STOP_START = {
    "kafka-stop": cmd_kafka_stop,
    "kafka-start": cmd_kafka_start,
    "postgres-stop": cmd_postgres_stop,
    "postgres-start": cmd_postgres_start,
}


# --------------------------------------------------------------------------------------------
# kill -9 keeping the data (the chaos suite: a crash, not a shutdown — no flush, no checkpoint).
# ``kafka-start``/``postgres-start`` bring them back; PostgreSQL then runs crash recovery.


def _children(pid: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    ).stdout
    return [int(token) for token in out.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def cmd_kafka_kill() -> None:
    pid = pid_alive(INFRA_DIR / "kafka" / "kafka.pid")
    if pid is not None:
        log(f"kill -9 Kafka (pid {pid})")
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not port_open(KAFKA_PORT), "Kafka's port closing", 30)


def cmd_postgres_kill() -> None:
    pid_file = postgres_dir() / "data" / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (FileNotFoundError, ValueError, IndexError):
        log("PostgreSQL is not running")
        return
    # The postmaster and every backend at once, as a machine crash would: nothing shuts down.
    victims = [pid, *_children(pid)]
    log(f"kill -9 PostgreSQL (postmaster {pid} and {len(victims) - 1} children)")
    for victim in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
    wait_for(lambda: not any(_alive(v) for v in victims), "PostgreSQL's processes ending", 30)


KILL = {"kafka-kill": cmd_kafka_kill, "postgres-kill": cmd_postgres_kill}


def env_lines(bootstrap: str, dsn: str) -> list[str]:
    lines = [
        f"TETHER_KAFKA_BOOTSTRAP_SERVERS={bootstrap}",
        f"TETHER_POSTGRES_DSN={dsn}",
    ]
    if TLS:
        lines += [
            f"TETHER_INFRA_KAFKA_SASL_SSL=127.0.0.1:{KAFKA_SECURE_PORT}",
            f"TETHER_INFRA_TLS_DIR={tls_dir()}",
        ]
    return lines


def cmd_up() -> None:
    # Standard output carries the environment and nothing else: every tool started below (mvn,
    # apt-get, initdb, kafka-storage, pg_ctl) writes to standard error, even if it ignores -q.
    with stdout_to_stderr() as out:
        INFRA_DIR.mkdir(parents=True, exist_ok=True)
        bootstrap = kafka_up()
        dsn = postgres_up()
        browser_binaries()  # for tests/console/test_browser.py and the demo's screenshots
        lines = env_lines(bootstrap, dsn)
        (INFRA_DIR / "env").write_text("\n".join(lines) + "\n")
        out.emit("\n".join(lines) + "\n")


def cmd_env() -> None:
    env_file = INFRA_DIR / "env"
    if not env_file.exists():
        raise SystemExit("[infra] not running: run 'make infra-up' first")
    print(env_file.read_text(), end="")


def cmd_status() -> None:
    kafka = pid_alive(INFRA_DIR / "kafka" / "kafka.pid")
    print(f"kafka: {'running pid ' + str(kafka) if kafka else 'stopped'} (port {KAFKA_PORT})")
    pg = port_open(POSTGRES_PORT) and (postgres_dir() / "data").exists()
    print(f"postgres: {'running' if pg else 'stopped'} (port {POSTGRES_PORT})")


def cmd_down() -> None:
    stop_pid(INFRA_DIR / "kafka" / "kafka.pid", "Kafka")
    postgres_down()
    shutil.rmtree(postgres_dir(), ignore_errors=True)
    shutil.rmtree(INFRA_DIR, ignore_errors=True)
    log("infrastructure stopped and its data removed")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "command",
        choices=["up", "env", "status", "down", "browser", "kafka-libs", *STOP_START, *KILL],
    )
    args = parser.parse_args()
    {
        "up": cmd_up,
        "env": cmd_env,
        "status": cmd_status,
        "down": cmd_down,
        "browser": cmd_browser,
        "kafka-libs": lambda: print(kafka_libs()),
        **STOP_START,
        **KILL,
    }[args.command]()


if __name__ == "__main__":
    main()
