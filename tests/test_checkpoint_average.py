"""Averaging the trainable weights of training checkpoints (``checkpoint_weights``)."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
import pytest

from mlx_hdr.errors import WeightsError
from mlx_hdr.train.checkpoint import checkpoint_weights, save_checkpoint


def _save(path, model, step):
    return save_checkpoint(
        path, model, optim.Adam(learning_rate=1e-3), step=step, epoch=0, config_json="{}"
    )


def test_one_checkpoint_is_its_weights_and_several_their_mean(tmp_path):
    models = []
    for seed in range(3):
        mx.random.seed(seed)
        models.append(nn.Linear(4, 3))
        _save(tmp_path / f"c{seed}.safetensors", models[-1], step=100 * (seed + 1))
    one, steps = checkpoint_weights([tmp_path / "c1.safetensors"])
    assert steps == [200]
    np.testing.assert_array_equal(np.array(one["weight"]), np.array(models[1].weight))
    mean, steps = checkpoint_weights([tmp_path / f"c{i}.safetensors" for i in range(3)])
    assert steps == [100, 200, 300] and set(mean) == {"weight", "bias"}
    expect = np.mean([np.array(m.weight) for m in models], axis=0)
    np.testing.assert_allclose(np.array(mean["weight"]), expect, rtol=1e-6, atol=1e-7)
    assert not np.allclose(expect, np.array(models[0].weight))


def test_checkpoints_of_different_models_are_refused(tmp_path):
    _save(tmp_path / "a.safetensors", nn.Linear(4, 3), step=1)
    _save(tmp_path / "b.safetensors", nn.Linear(4, 5), step=2)
    with pytest.raises(WeightsError, match="b.safetensors"):
        checkpoint_weights([tmp_path / "a.safetensors", tmp_path / "b.safetensors"])
