# Video Insight Bot: one CPU image for Function Compute (custom container), Docker Compose and Kubernetes.
#
#   docker build -t video-insight-bot .                                  # FunASR models baked in
#   docker build --build-arg WITH_MODELS=0 -t video-insight-bot:slim .   # no models: mount them at /opt/models
#
# Stages: deps (venv: CPU torch + the dependencies) -> app (the project installed on top);
#         models (ModelScope snapshots, independent of the code); runtime (slim Python + ffmpeg, non-root).
# Layers go from the least to the most often changed, so a source edit rebuilds only the last few.

# bookworm, not the moving "3.11-slim": its ffmpeg 5.1 is the one the tests run against. Where Docker Hub is
# slow, pass the same image from a mirror: --build-arg PYTHON_IMAGE=<mirror>/library/python:3.11-slim-bookworm
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH


# --- deps: the virtual environment, built where compilers are allowed --------------------------------------
FROM base AS deps
# A compiler for the few sdists without wheels (crcmod); it never reaches the runtime image.
# Unpinned apt packages: the base image pins the Debian release, and security fixes should flow in.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
# torch first and alone, from the CPU-only index: on PyPI the Linux wheel pulls gigabytes of CUDA libraries.
# The later installs keep it because constraints.txt pins the same version (2.13.0+cpu satisfies ==2.13.0).
RUN python -m venv "$VIRTUAL_ENV" \
    && pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
WORKDIR /src
COPY pyproject.toml constraints.txt ./
# The dependencies alone (read from pyproject.toml), so this layer survives every source edit.
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir -c constraints.txt -r /tmp/requirements.txt


# --- app: the project itself (console script video-insight) ----------------------------------------------
FROM deps AS app
COPY README.md ./
COPY server.py ./
COPY bot ./bot
COPY pipeline ./pipeline
# Every dependency is already there; this adds only the project (versions still held by the constraints).
RUN pip install --no-cache-dir -c constraints.txt .


# --- models: FunASR weights from ModelScope, in their own stage --------------------------------------------
# Built from the base with nothing but modelscope, so neither code nor dependency edits download them again.
FROM base AS models
ARG WITH_MODELS=1
WORKDIR /src
COPY constraints.txt ./
# modelscope's version comes from constraints.txt; this tool venv stays behind in this stage.
RUN python -m venv /opt/model-tools \
    && /opt/model-tools/bin/pip install --no-cache-dir -c constraints.txt modelscope
COPY scripts/download_models.py ./
RUN case "$WITH_MODELS" in \
        1) /opt/model-tools/bin/python download_models.py /opt/models ;; \
        0) mkdir -p /opt/models && echo "WITH_MODELS=0: no models in the image; mount them at /opt/models" ;; \
        *) echo "WITH_MODELS must be 1 or 0, not '$WITH_MODELS'" >&2; exit 1 ;; \
    esac


# --- runtime -----------------------------------------------------------------------------------------------
FROM base AS runtime
# ffmpeg, and a small font with Chinese glyphs for the contact sheets (pipeline/contact_sheet.py finds
# wqy-microhei.ttc; without it Chinese titles render as boxes). Unpinned, like build-essential above.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg fonts-wqy-microhei \
    && rm -rf /var/lib/apt/lists/*
# A fixed uid/gid, so NAS mounts (FC nasConfig userId/groupId) and Kubernetes fsGroup can match it.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --create-home --home-dir /home/app --shell /usr/sbin/nologin app \
    && mkdir -p /data /work \
    && chown app:app /data /work

COPY --from=app /opt/venv /opt/venv
# Root-owned and read-only for the app user: a bug can not corrupt the weights.
COPY --from=models /opt/models /opt/models

WORKDIR /app
COPY server.py ./
COPY bot ./bot
COPY pipeline ./pipeline
COPY scripts ./scripts

# The model paths are what scripts/download_models.py prints for /opt/models (a test checks they agree).
# DATA_DIR holds SQLite state: mount a volume there. WORK_DIR keeps its default under /tmp; /work is ready,
# app-owned, for a volume (an empty volume mounted there inherits that ownership).
# numba (via librosa) caches compiled code; the venv is read-only for the app user, /tmp is not.
ENV DATA_DIR=/data \
    MODELSCOPE_CACHE=/opt/models \
    FUNASR_MODEL_DIR=/opt/models/models/iic/speech_seaco_paraformer_large_asr_nat-zh-cn-16k-common-vocab8404-pytorch \
    FUNASR_VAD_MODEL_DIR=/opt/models/models/iic/speech_fsmn_vad_zh-cn-16k-common-pytorch \
    FUNASR_PUNC_MODEL_DIR=/opt/models/models/iic/punc_ct-transformer_cn-en-common-vocab471067-large \
    NUMBA_CACHE_DIR=/tmp/numba-cache

# Numeric, so Kubernetes runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 9000
# No curl in the slim image: the standard library asks /health (PORT when set, else the default 9000).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '9000') + '/health', timeout=4)"]
CMD ["python", "server.py"]
