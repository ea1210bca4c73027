"""The package's list of Keras activations is the installed Keras's, and names are checked."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from hsiseu.activations import ACTIVATIONS, REFUSED, af_label, check_af, check_afs, kernel_initializer_name
from hsiseu.model import build_unet


def _keras_names() -> set[str]:
    from keras.src.activations import ALL_OBJECTS_DICT

    return set(ALL_OBJECTS_DICT)


def test_the_list_is_keras_own_split_into_usable_and_refused():
    assert set(ACTIVATIONS) | set(REFUSED) == _keras_names()
    assert not set(ACTIVATIONS) & set(REFUSED)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_every_usable_activation_is_element_wise_and_keeps_the_shape(name):
    x = np.linspace(-4, 4, 2 * 3 * 4, dtype="float32").reshape(1, 2, 3, 4)
    fn = keras.activations.get(name)
    y = np.asarray(fn(x))
    assert y.shape == x.shape
    # element-wise: permuting the channels permutes the output the same way
    perm = [2, 0, 3, 1]
    np.testing.assert_allclose(np.asarray(fn(x[..., perm])), y[..., perm], rtol=1e-6, atol=1e-6)


def test_bad_names_are_named_with_the_nearest_known_ones():
    with pytest.raises(ValueError, match=r"afs: 'tanhh' is not a Keras 3 element-wise activation; did you mean 'tanh'"):
        check_af("tanhh")
    with pytest.raises(ValueError, match=r"'softmax' cannot be used: it couples the channels"):
        check_afs(["relu", "softmax"])
    with pytest.raises(ValueError, match=r"afs lists relu more than once"):
        check_afs(["relu", "tanh", "relu"])
    assert check_afs(["relu6", "tanh"]) == ["relu6", "tanh"]


def test_labels_and_initializers():
    assert af_label("hard_sigmoid") == "Hard Sigmoid" and af_label("relu6") == "ReLU6"
    assert af_label("my_af") == "my_af"
    assert kernel_initializer_name("relu") == kernel_initializer_name("relu6") == "he_normal"
    assert kernel_initializer_name("tanh") == kernel_initializer_name("sigmoid") == "glorot_uniform"
    assert kernel_initializer_name("selu") == "lecun_normal"


def test_the_unet_is_built_with_any_listed_activation_and_refuses_others():
    model = build_unet(height=8, width=8, bands=3, n_classes=5, af="relu6", pools=1, base_filters=2, seed=1)
    assert model.get_layer("act_1").get_config()["activation"] == "relu6"
    assert type(model.get_layer("cnv_1").kernel_initializer).__name__ == "HeNormal"
    with pytest.raises(ValueError, match="af: activation 'glu' cannot be used"):
        build_unet(height=8, width=8, bands=3, n_classes=5, af="glu", pools=1, base_filters=2)
