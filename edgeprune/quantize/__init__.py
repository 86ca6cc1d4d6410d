"""Quantization-aware training for Keras 3 (issue 18): fake-quantized training that simulates
TFLite's int8 arithmetic and keeps pruned zeros zero.

`qat.wrap` rewrites the graph (the layers themselves live in `edgeprune.qat_layers`, so any
loader can read a QAT file), `training.qat_fit` fine-tunes it, `pipeline.qat_file` goes
file to file with a manifest; `convert --quantize int8` then uses the learned ranges."""
