"""Data: image sources, TFRecord I/O and input harmonization."""
