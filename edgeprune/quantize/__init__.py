"""Quantization-aware training for Keras 3 (issue 18): fake-quantized training that simulates
TFLite's int8 arithmetic and keeps pruned zeros zero."""
