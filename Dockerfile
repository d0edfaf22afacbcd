# syntax=docker/dockerfile:1.7
# One image for every Autoflow component; the subcommand picks it:
#   autoflow operator     the kopf operator (the chart's Deployment runs this)
#   autoflow runner ...   one WorkflowRun in a Job (the operator renders those Jobs)
#   autoflow webui, autoflow gateway (later)
#
# Stage 1 builds wheels of Autoflow and every dependency; stage 2 installs them offline from
# those wheels, so the image holds no compiler, no pip cache and no source tree. At run time
# nothing is written: bytecode is compiled at install time, HOME and TMPDIR point at /tmp
# (the chart mounts an emptyDir there), so the root filesystem can be read-only.
#
# tests/test_dockerfile.py keeps this file honest without a Docker engine: it checks every
# COPY source exists in a clean checkout (and is not excluded by .dockerignore), then runs
# the `python -P -m pip` steps below in fresh virtual environments and runs `autoflow`.
# Keep install steps as plain pip lines; -P stops /src/operator shadowing the stdlib module.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY autoflow/ autoflow/
COPY cli/ cli/
COPY connectors/ connectors/
COPY crds/ crds/
COPY operator/ operator/
COPY runners/ runners/
COPY webui/ webui/
# webui/templates links here: the template gallery ships in the package
COPY examples/templates/ examples/templates/
RUN python -P -m pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="autoflow" \
      org.opencontainers.image.description="Kubernetes-native, no-code business-process automation" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -P -m pip install --no-cache-dir --no-index --find-links /wheels --root-user-action=ignore autoflow
# 65532: the conventional "nonroot" uid/gid (distroless); numeric, so runAsNonRoot can verify it.
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["autoflow"]
CMD ["--help"]
