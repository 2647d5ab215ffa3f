"""Training: settings, data, the head's probe, calibration fitting, scoring, publishing, reports,
the ONNX exporter. `train.py` and `main.py` at the top drive it; it may use `serving` (to check
what it publishes) and `utils`, never the entry points."""
