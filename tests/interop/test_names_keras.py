"""specc's keras layout against real Keras 3 layers: variable paths and shapes."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
from keras import layers as L  # noqa: E402

from conftest import HERE_SPECS, SPECS, stored  # noqa: E402


def keras_vars(model):
    return [(v.path, tuple(v.shape)) for v in model.weights]


def mnist_cnn_model():
    """The Keras model that specs/mnist-cnn.toml describes."""
    inp = keras.Input((28, 28, 1))
    x = L.Conv2D(32, 3, activation="relu", name="conv1")(inp)
    x = L.MaxPooling2D(2)(x)
    x = L.Conv2D(64, 3, activation="relu", name="conv2")(x)
    x = L.MaxPooling2D(2)(x)
    x = L.Flatten()(x)
    x = L.Dropout(0.5)(x)
    x = L.Dense(10, activation="softmax", name="head")(x)
    return keras.Model(inp, x)


def test_mnist_cnn_matches_keras_functional_model():
    assert stored(SPECS / "mnist-cnn.toml") == keras_vars(mnist_cnn_model())


def keras_every_layer_models():
    """The Keras models that specs/keras_layers.yaml describes (three chains)."""
    keras.backend.clear_session()  # automatic names (dense, dense_1) restart from zero
    inp = keras.Input((16, 16, 3))
    x = L.Conv2D(8, 3, padding="same", strides=2, name="conv")(inp)
    x = L.BatchNormalization(name="bn")(x)
    x = L.AveragePooling2D(2, name="pool")(x)
    x = L.Conv2D(8, (1, 3), groups=4, name="grouped")(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(12)(x)
    x = L.Dense(12)(x)
    x = L.LayerNormalization(name="ln")(x)
    x = L.RMSNormalization(name="rms")(x)
    cnn = keras.Model(inp, x)

    seq = keras.Input((5, 12))
    y = L.LSTM(6, return_sequences=True, name="lstm")(seq)
    y = L.Bidirectional(L.GRU(4, return_sequences=True), name="bigru")(y)
    y = L.MultiHeadAttention(2, 4, name="mha")(y, y)
    y = L.Conv1D(3, 2, name="c1")(y)
    rnn = keras.Model(seq, y)

    ids = keras.Input((7,), dtype="int32")
    z = L.Embedding(50, 9, name="emb")(ids)
    emb = keras.Model(ids, z)

    return cnn, rnn, emb


def test_every_layer_type_matches_keras():
    want = [v for m in keras_every_layer_models() for v in keras_vars(m)]
    assert stored(HERE_SPECS / "keras_layers.yaml") == want
