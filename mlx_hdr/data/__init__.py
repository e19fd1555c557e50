"""Datasets, manifests, preprocessing, the camera simulator and training batch loaders."""
