# The app on the slim serving install (requirements-serve.txt: ONNX Runtime, no torch or
# transformers), after the Spaces Docker conventions: a user with uid 1000, port 7860,
# `python app.py`. Checked by `python -m benchmarks.container --model-dir MODEL` (build, serve
# with and without a model, uid, health check; with podman on this project's machines):
#   docker build -t movie-sentiment .
#   docker run -p 7860:7860 -v "$PWD/model:/home/user/app/model:ro" movie-sentiment
#   docker run -p 7860:7860 -e MODEL_ID=you/movie-sentiment movie-sentiment   # from the Hub
FROM python:3.11-slim
RUN useradd --create-home --uid 1000 user
USER user
ENV HOME=/home/user PATH=/home/user/.local/bin:$PATH PYTHONUNBUFFERED=1 \
    GRADIO_SERVER_NAME=0.0.0.0 GRADIO_SERVER_PORT=7860
WORKDIR /home/user/app
COPY --chown=user requirements.txt requirements-serve.txt ./
RUN pip install --no-cache-dir --user -r requirements-serve.txt
COPY --chown=user app.py infer.py utils.py pooling.py ./
COPY --chown=user serving/ serving/
EXPOSE 7860
# Healthy once the model answers a real review (/healthz: 200, else 503 with the reason). The
# slim image has no curl; urlopen raises on a 503. podman keeps this only with --format docker.
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/healthz', timeout=8)"]
CMD ["python", "app.py"]
