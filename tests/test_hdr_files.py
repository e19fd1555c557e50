"""HDR files at the edges of what their formats hold: a half EXR's range, Radiance RGBE's
lack of negative values, a Radiance header's length (mlx_hdr/io/hdr_io.py)."""

from __future__ import annotations

import numpy as np
import pytest


def test_writers_clamp_what_their_format_cannot_hold(tmp_path):
    from mlx_hdr.io.hdr_io import read_hdr, write_hdr

    img = np.array([[[1e5, 1.0, 1.0], [np.nan, 1.0, 1.0]]], np.float32)
    with pytest.warns(UserWarning, match="values above 65504 clamped"):  # a NaN elsewhere
        write_hdr(tmp_path / "x.exr", img)
    assert read_hdr(tmp_path / "x.exr")[0, 0, 0] == 65504.0
    neg = np.array([[[-0.5, 2.0, 0.1], [1.0, np.inf, 1.0]]], np.float32)
    back = read_hdr(write_hdr(tmp_path / "n.hdr", neg))  # OpenCV had wrapped -0.5 to 3.5
    np.testing.assert_allclose(back, [[[0.0, 2.0, 0.1], [1.0, 2.0, 1.0]]], atol=0.02)  # inf: top


def test_a_radiance_header_with_a_long_history_is_read(tmp_path):
    """Tools append their command lines to a Radiance header: 11 KB here (4 KB were read)."""
    import cv2

    from mlx_hdr.io.hdr_io import read_hdr

    img = np.random.default_rng(0).uniform(0, 4, (6, 8, 3)).astype(np.float32)
    data = cv2.imencode(".hdr", img[..., ::-1])[1].tobytes()
    at = data.index(b"\n\n")
    history = b"\n".join(b"pcomb -e 'lo=li(1)*%d' in.hdr" % k for k in range(400))
    (tmp_path / "long.hdr").write_bytes(data[:at] + b"\n" + history + data[at:])
    np.testing.assert_allclose(read_hdr(tmp_path / "long.hdr"), img, rtol=0.01, atol=0.02)
