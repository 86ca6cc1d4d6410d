"""edgeprune's on-device agent: standard library + numpy + one TFLite runtime, Python >= 3.8.

Nothing in this package may import edgeprune or TensorFlow at module level: it is copied
as-is onto Raspberry Pi and Jetson boards.
"""

__version__ = "0.1.0"
