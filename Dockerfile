# A Distillery worker image: `docker run IMAGE worker --roles prefilter,probe,stage2,monitor` (KAFKA_BOOTSTRAP_SERVERS
# and the other settings come from the environment, see docs/streaming.md).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false

WORKDIR /app

# torch first, pinned to the CPU build, so resolving the package cannot pull a multi-GB CUDA build.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

COPY pyproject.toml README.md ./
COPY filters ./filters
COPY models ./models
COPY streams ./streams
COPY monitoring ./monitoring
RUN pip install . && useradd --create-home --uid 10001 distillery

USER distillery
EXPOSE 9464
ENTRYPOINT ["distillery"]
CMD ["worker", "--roles", "prefilter,probe,stage2,monitor"]
