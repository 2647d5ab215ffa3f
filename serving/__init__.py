"""Serving: reading a model folder and its calibration, the runtimes (ONNX Runtime, OpenVINO,
PyTorch), the input checks, explanations, whole files, visitors' corrections, the REST server
and its guard, Hub access. `infer.py` and `app.py` at the top drive it; it never imports
`training`."""
