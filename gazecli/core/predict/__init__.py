"""Prediction on the user's own images and videos: input handling, head boxes, head detection and
tracking, output files. The `Predictor` that runs a model lives in `core/stages/predict.py`;
see docs/predict.md for the conventions."""
