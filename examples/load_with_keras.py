"""Load a layout-keras specc file into Keras 3 layers, by variable path.

    specc build specs/mnist-cnn.toml -o mnist-cnn.safetensors
    KERAS_BACKEND=torch python examples/load_with_keras.py

Keras 3 has no safetensors loader of its own; a functional model's `variable.path`
(`conv1/kernel`, `head/bias`, ...) is exactly the name specc writes.
"""

import keras
import numpy as np
from keras import layers as L
from safetensors.numpy import load_file

arrays = load_file("mnist-cnn.safetensors")
inp = keras.Input((28, 28, 1))
x = L.Conv2D(32, 3, activation="relu", name="conv1")(inp)
x = L.MaxPooling2D(2)(x)
x = L.Conv2D(64, 3, activation="relu", name="conv2")(x)
x = L.MaxPooling2D(2)(x)
x = L.Flatten()(x)
x = L.Dropout(0.5)(x)
x = L.Dense(10, activation="softmax", name="head")(x)
model = keras.Model(inp, x)
for v in model.weights:
    v.assign(arrays[v.path])
print(model.predict(np.zeros((1, 28, 28, 1), np.float32), verbose=0))
