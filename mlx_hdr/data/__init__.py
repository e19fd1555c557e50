"""Datasets, manifests, preprocessing, the camera simulator and the training sources."""
