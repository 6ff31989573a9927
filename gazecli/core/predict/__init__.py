"""Prediction on the user's own images and videos: the `Predictor` that runs a trained student
(predictor.py), input handling, head boxes, head detection and tracking, output files; see
docs/predict.md for the conventions."""
