# One image for experiments_svc, tracking_svc, the gateway and the MLflow
# tracking server (`mlflow server`); docker-compose.yml picks the command of
# each service. Build: `docker build -t research-backbone .`

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: the virtualenv with the dependencies, the generated stubs and
# the project, plus a separate virtualenv with the code generators.
FROM ${PYTHON_IMAGE} AS builder

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src

# Every pin comes from pyproject.toml: the runtime dependencies, and the code
# generators of the dev extra (with the protobuf and googleapis pins of the
# runtime, so that the stubs match the runtime that loads them). Copied on
# their own so that this slow layer is rebuilt only when pyproject changes.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; \
project = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
runtime = project['dependencies']; \
tools = [d for d in project['optional-dependencies']['dev'] if d.startswith(('grpcio-tools', 'mypy-protobuf'))]; \
tools += [d for d in runtime if d.startswith(('protobuf', 'googleapis-common-protos'))]; \
open('requirements.txt', 'w').write('\n'.join(runtime) + '\n'); \
open('codegen.txt', 'w').write('\n'.join(tools) + '\n')" \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install --requirement requirements.txt \
 && python -m venv /opt/codegen \
 && /opt/codegen/bin/pip install --requirement codegen.txt

# The stubs are generated here, at build, never taken from the build context.
COPY protos/ protos/
COPY scripts/gen_protos.py scripts/gen_protos.py
RUN /opt/codegen/bin/python scripts/gen_protos.py

COPY research_common/ research_common/
COPY experiments_svc/ experiments_svc/
COPY tracking_svc/ tracking_svc/
COPY gateway/ gateway/
# A regular (not editable) install: the packages, the stubs under gen/ and the
# Alembic migrations land in the virtualenv's site-packages; then an import
# from outside /src proves the installed copy is complete.
RUN /opt/venv/bin/pip install --no-deps . \
 && cd / \
 && /opt/venv/bin/python -c "import experiments_svc.server, tracking_svc.server, gateway.server"

# --- runtime: the virtualenv alone, run as an unprivileged user.
FROM ${PYTHON_IMAGE} AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH

RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --create-home --home-dir /home/app \
    --shell /usr/sbin/nologin app \
 && mkdir -p /app/.data /mlartifacts \
 && chown app:app /app/.data /mlartifacts

COPY --from=builder /opt/venv /opt/venv

# /app/.data holds the embedded defaults (SQLite files) when no DATABASE_URL
# or MLFLOW_TRACKING_URI is given; /mlartifacts is the MLflow server's
# artifact store (a named volume in docker-compose.yml takes its ownership).
WORKDIR /app
USER 10001:10001

# gRPC services, gateway, MLflow server: which one listens is set per
# container by EXPERIMENTS_ADDR / TRACKING_ADDR / GATEWAY_ADDR.
EXPOSE 50051 50052 8080 5000
CMD ["python", "-m", "gateway"]
