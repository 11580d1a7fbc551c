# A Distillery worker image: `docker run IMAGE worker --roles prefilter,probe,stage2,monitor` (KAFKA_BOOTSTRAP_SERVERS
# and the other settings come from the environment, see docs/streaming.md).
# Base image pinned by tag and digest (the multi-arch index digest of python:3.11.7-slim-bookworm, the Python the
# test suite runs on; check it with `docker buildx imagetools inspect python:3.11.7-slim-bookworm` before bumping).
FROM python:3.11.7-slim-bookworm@sha256:d11b9bd5e49ea7401753d78f4d3b56f3aec952b85b49bcae88981f0452818e0b

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    DISTILLERY_HEALTH_PORT=8080

WORKDIR /app

# 1. torch, pinned to the CPU build, so resolving the package cannot pull a multi-GB CUDA build.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

# 2. The dependencies of pyproject.toml at the exact versions of docker/constraints.txt, before any source is
#    copied: a code change rebuilds only the layers below.
COPY pyproject.toml docker/constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt \
    && useradd --create-home --uid 10001 distillery

# 3. The source and the trained artifacts (filters/*/v*/artifacts), without reinstalling dependencies; what is
#    copied is whatever .dockerignore lets through (every package that pyproject.toml installs).
COPY . ./
RUN pip install --no-deps .

USER distillery
EXPOSE 9464 8080
# /healthz of the worker (DISTILLERY_HEALTH_PORT); `python -m streams.health readyz` checks readiness.
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 CMD ["python", "-m", "streams.health", "healthz"]
ENTRYPOINT ["distillery"]
CMD ["worker", "--roles", "prefilter,probe,stage2,monitor"]
