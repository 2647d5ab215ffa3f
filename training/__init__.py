"""Training: settings, data and extra sources, the head's probe, scoring, publishing, reports,
the ONNX exporter. `train.py` and `main.py` at the top drive it; it may use `serving` (to
calibrate, and to check what it publishes) and `utils`, never the entry points."""
