# Video Insight Bot: one CPU image for Function Compute (custom container), Docker Compose and Kubernetes.
#
#   docker build -t video-insight-bot .                                  # FunASR models baked in
#   docker build --build-arg WITH_MODELS=0 -t video-insight-bot:slim .   # no models: mount them at /opt/models
#
# podman/buildah write OCI images by default, which have no HEALTHCHECK: build with `--format docker` to keep
# it (scripts/image-smoke.sh does, and checks the result).
#
# Stages: deps (venv: CPU torch + the dependencies, trimmed) -> app (the project installed on top);
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
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
WORKDIR /src
COPY constraints.txt ./
# torch first and alone. PyPI's Linux torch==2.13.0 is the CUDA build (gigabytes of nvidia-* wheels); the CPU
# index also offers 2.13.0+cpu, which pip prefers (a local version sorts above the plain one) and which
# satisfies the ==2.13.0 pin in constraints.txt, so the later installs keep it. Point TORCH_INDEX_URL at a
# mirror of https://download.pytorch.org/whl/cpu where that is slow; empty, pip looks only at PyPI and its
# configured wheel sources (PIP_FIND_LINKS). The build fails rather than ship a CUDA torch.
# PIP_CERT / PIP_FIND_LINKS are for builds behind a TLS-inspecting proxy or with a local wheel directory:
# build arguments reach the RUN steps but are not kept in the image's environment.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PIP_CERT
ARG PIP_FIND_LINKS
RUN python -m venv "$VIRTUAL_ENV" \
    && pip install --no-cache-dir -c constraints.txt ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} \
        torch==2.13.0 \
    && python -c "import sys, torch; sys.exit(torch.version.cuda and 'torch %s is a CUDA build: set TORCH_INDEX_URL to a CPU index' % torch.__version__)"
COPY pyproject.toml ./
# The dependencies alone (read from pyproject.toml), plus the offline Whisper model (the offline-model extra,
# 75 MB) so that ASR_BACKEND=whisper works in the image without a download. This layer survives source edits.
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" \
        > /tmp/requirements.txt \
    && python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['offline-model'], sep='\n')" \
        >> /tmp/requirements.txt \
    && pip install --no-cache-dir -c constraints.txt -r /tmp/requirements.txt
# What no code path runs at run time, about 0.6 GB (scripts/image-smoke.sh checks what is left):
# - torch's C++ headers, CMake files, test binaries and test libraries (torch_shm_manager stays: `import torch`
#   looks for it); the packages' own test suites; C/C++/Cython sources (not the .pyi stubs: librosa loads its
#   imports from one); the static symbol table
#   of llvmlite's LLVM (18 MB; the dynamic symbols it is used through stay);
# - transformers (126 MB), which funasr declares for its LLM-based models (Qwen-Audio, Fun-ASR-Nano) and
#   Hugging Face tokenizers; umap-learn, pynndescent and scikit-learn, for its speaker clustering: none of
#   them is imported by Paraformer, FSMN-VAD or CT-Punc (the smoke test runs FunASR through AutoModel);
# - modelscope, which only downloads models: that is the model-tools image's job (docker-compose's models
#   service, and the models stage below); hf-xet, for Hugging Face Xet downloads (Whisper loads local files).
# Only this stage's /opt/venv reaches the image, so the files are gone from it, not hidden under a later layer.
RUN pip uninstall --no-cache-dir -y transformers umap-learn pynndescent scikit-learn modelscope modelscope-hub hf-xet \
    && site="$("$VIRTUAL_ENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
    && rm -rf "$site/torch/include" "$site/torch/share" "$site/torch/test" \
        "$site"/torch/lib/*_test.so "$site/torch/lib/libaoti_custom_ops.so" "$site/torch/lib/libbackend_with_compiler.so" \
    && find "$site/torch/bin" -type f ! -name torch_shm_manager -delete \
    && find "$site" -depth -type d -name tests -path "$site/*/tests" -exec rm -rf {} + \
    && find "$site" -type f \( -name '*.pxd' -o -name '*.pyx' -o -name '*.h' -o -name '*.hpp' -o -name '*.c' \
        -o -name '*.cpp' \) -delete \
    && strip --strip-unneeded "$site/llvmlite/binding/libllvmlite.so" \
    && find "$site" -depth -type d -name __pycache__ -empty -delete


# --- app: the project itself (console script video-insight) ----------------------------------------------
FROM deps AS app
COPY README.md ./
COPY server.py ./
COPY bot ./bot
COPY pipeline ./pipeline
# Every dependency is already there; this adds only the project (versions still held by the constraints),
# built with the venv's pinned setuptools, offline. It is the image's one copy of the code: `python -m server`
# and `video-insight` both run it.
# pip itself goes afterwards (16 MB): nothing installs at run time, and the venv is read-only for the app user.
RUN pip install --no-cache-dir --no-build-isolation --no-deps -c constraints.txt . \
    && python -m pip uninstall --no-cache-dir -y pip


# --- model-tools: modelscope and the download script, an image of its own ---------------------------------
# docker-compose's models service runs it to fill the model volume (the runtime image has no modelscope).
FROM base AS model-tools
ARG PIP_CERT
WORKDIR /app
COPY constraints.txt ./
RUN python -m venv /opt/model-tools \
    && /opt/model-tools/bin/pip install --no-cache-dir -c constraints.txt modelscope
COPY scripts/download_models.py ./scripts/
ENV PATH=/opt/model-tools/bin:$PATH


# --- models: FunASR weights from ModelScope, in their own stage --------------------------------------------
# Built from the base with nothing but modelscope, so neither code nor dependency edits download them again.
FROM base AS models
ARG WITH_MODELS=1
ARG PIP_CERT
WORKDIR /src
COPY constraints.txt scripts/download_models.py ./
# modelscope's version comes from constraints.txt; this tool venv stays behind in this stage, and is built
# only when the models are.
RUN case "$WITH_MODELS" in \
        1) python -m venv /opt/model-tools \
            && /opt/model-tools/bin/pip install --no-cache-dir -c constraints.txt modelscope \
            && /opt/model-tools/bin/python download_models.py /opt/models ;; \
        0) mkdir -p /opt/models && echo "WITH_MODELS=0: no models in the image; mount them at /opt/models" ;; \
        *) echo "WITH_MODELS must be 1 or 0, not '$WITH_MODELS'" >&2; exit 1 ;; \
    esac


# --- runtime -----------------------------------------------------------------------------------------------
FROM base AS runtime
# ffmpeg, and a small font with Chinese glyphs for the contact sheets (pipeline/contact_sheet.py finds
# wqy-microhei.ttc; without it Chinese titles render as boxes). Unpinned, like build-essential above.
# The clean-up is explicit: a base image without debian-slim's apt rule would otherwise keep the .debs.
# ffmpeg's libavdevice links the OpenGL loader (for an output device this image never uses), and that drags in
# Mesa's drivers and the LLVM and Z3 they load, 0.16 GB that no ffmpeg command here ever opens: dpkg leaves
# those files out (the packages stay installed, so apt stays consistent; the smoke test checks that ffmpeg
# and ffprobe find every library they link).
# Docs, man pages and translations are left out too, as debian-slim does (and the official base already).
# hadolint ignore=DL3008
RUN printf '%s\n' 'path-exclude=/usr/lib/*/libLLVM-*.so*' 'path-exclude=/usr/lib/*/dri/*' \
        'path-exclude=/usr/lib/*/libz3.so*' 'path-exclude=/usr/share/doc/*' 'path-include=/usr/share/doc/*/copyright' \
        'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/locale/*' 'path-exclude=/usr/share/info/*' \
        > /etc/dpkg/dpkg.cfg.d/slim-runtime \
    && apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg fonts-wqy-microhei \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /var/log/apt /var/log/dpkg.log
# A fixed uid/gid, so NAS mounts (FC nasConfig userId/groupId) and Kubernetes fsGroup can match it.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --create-home --home-dir /home/app --shell /usr/sbin/nologin app \
    && mkdir -p /data /work \
    && chown app:app /data /work

# Root-owned and read-only for the app user: a bug can not corrupt the weights.
COPY --from=models /opt/models /opt/models
COPY --from=app /opt/venv /opt/venv

# The code lives once, in the venv; /app is only the working directory.
WORKDIR /app

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
# No curl in the slim image: the standard library asks /health on the port the server listens on (PORT, else
# FC's FC_CUSTOM_LISTEN_PORT / FC_SERVER_PORT, else 9000: the same order as the settings).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; e = os.environ.get; urllib.request.urlopen('http://127.0.0.1:' + (e('PORT') or e('FC_CUSTOM_LISTEN_PORT') or e('FC_SERVER_PORT') or '9000') + '/health', timeout=4)"]
CMD ["python", "-m", "server"]
