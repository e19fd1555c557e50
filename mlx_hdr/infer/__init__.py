"""Inference: a photo in, an HDR reconstruction out (the model or a classical method), then
calibrated and written to every planned file."""
