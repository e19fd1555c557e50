"""Image files: reading and writing LDR and HDR images (EXR, PFM, Radiance, HEIC, ICC), the
HDR photo formats (Ultra HDR gain-map JPEG, AVIF), and atomic writes."""
