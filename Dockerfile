# Guardline's production image.
#
#   docker build -t guardline .
#   docker build -t guardline:detoxify --build-arg EXTRAS=detoxify .
#   docker run --rm -p 8080:8080 --read-only --tmpfs /tmp -v guardline-data:/var/lib/guardline \
#     guardline serve --host 0.0.0.0 --port 8080 --upstream http://host.docker.internal:9000/v1
#
# Core install: Guardline with the pins of constraints.txt; no dev tools, no torch. The default
# detectors (presidio's recognizers on a blank spaCy pipeline, alt-profanity-check's model, the
# stereotype lexicons) ship inside the packages: nothing is downloaded at run time.
#
# Runs as uid/gid 10001 and writes only to /var/lib/guardline (the working directory: JSON Lines
# samples and the Kafka spool, under guardline-data/) and /tmp (HOME; `serve --workers N` metric
# snapshots). With a read-only root filesystem, mount a volume on /var/lib/guardline (the Helm
# chart: a PVC or an emptyDir) and a tmpfs on /tmp; without the volume `serve` stops at startup
# unless samples are off (GUARDLINE_SAMPLES__ENABLED=false).
#
# EXTRAS=detoxify adds the detoxify backend (torch==2.13.0+cpu from TORCH_INDEX_URL). Its model is
# never downloaded at run time: mount a checkpoint and set detectors.toxicity.checkpoint and
# huggingface_config_path, or mount torch's hub cache and point TORCH_HOME at it.
#
# Without Docker Hub access, scripts/build-image.sh builds this file with buildah on a stand-in
# base image made from Debian packages.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm


# The dependencies, from pyproject.toml and constraints.txt only: a code change reuses this stage
# and the final image's largest layer.
FROM ${PYTHON_IMAGE} AS deps

# Optional dependency groups of pyproject.toml, comma-separated (e.g. "detoxify").
ARG EXTRAS=""
# Where torch's CPU build comes from when EXTRAS has detoxify; empty: the configured indexes only.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /src
COPY pyproject.toml constraints.txt ./
RUN set -eu; \
    python -m venv /opt/venv; \
    python -c 'import sys, tomllib; \
p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
groups = p.get("optional-dependencies", {}); \
extras = [e.strip() for e in sys.argv[1].split(",") if e.strip()]; \
unknown = [e for e in extras if e not in groups]; \
unknown and sys.exit(f"EXTRAS: no group {unknown} in pyproject.toml (it has {list(groups)})"); \
print("\n".join(p["dependencies"] + [d for e in extras for d in groups[e]]))' \
      "$EXTRAS" > requirements.txt; \
    index=""; \
    case ",$EXTRAS," in \
      *,detoxify,*) [ -z "$TORCH_INDEX_URL" ] || index="--extra-index-url $TORCH_INDEX_URL" ;; \
    esac; \
    /opt/venv/bin/pip install $index -c constraints.txt -r requirements.txt


# Guardline itself, as a wheel.
FROM deps AS wheel
COPY README.md ./
COPY guardline ./guardline
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels .


FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="Guardline" \
      org.opencontainers.image.description="LLM guardrail proxy and online monitoring agent for OpenAI and Anthropic APIs" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed uid/gid (10001, as in the Helm chart's securityContext) that owns only the data directory.
RUN groupadd --gid 10001 guardline \
 && useradd --uid 10001 --gid 10001 --home-dir /var/lib/guardline --no-create-home \
      --shell /usr/sbin/nologin guardline \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/guardline

COPY --from=deps /opt/venv /opt/venv
COPY --from=wheel /wheels /tmp/wheels
# pip compiles the bytecode now: at run time nothing writes it (PYTHONDONTWRITEBYTECODE).
RUN PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
      /opt/venv/bin/pip install --no-deps --no-index /tmp/wheels/*.whl \
 && rm -rf /tmp/wheels \
 && /opt/venv/bin/pip check \
 && /opt/venv/bin/guardline --version

# HOME is /tmp so that any library cache (~/.cache, ~/.config) lands on the writable tmpfs, never
# the root filesystem.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp

WORKDIR /var/lib/guardline
USER 10001:10001
EXPOSE 8080

# For docker and podman (Kubernetes ignores it; the Helm chart probes /readyz and /healthz).
# Assumes the default port 8080.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status != 200)"]

ENTRYPOINT ["guardline"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
