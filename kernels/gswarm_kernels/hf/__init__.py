"""Hugging Face checkpoints served and trained by gswarm: the BERT family (sentence encoders and
sequence classifiers) and the GPT-2 family (causal decoders), read straight from a model directory.

Tensors keep the names `transformers` gives them for the model's type (`BertModel`,
`BertForSequenceClassification`, `GPT2LMHeadModel`), so what is trained here loads there and back.

Framework-neutral modules (numpy, safetensors, tokenizers): `spec`, `model_dir`, `tokenizer`,
`inputs`, `quantize`, `training`. Twins: `torch_forward` / `jax_forward` (the functions),
`torch_model` / `jax_model` (inference on a device), `train_torch` / `train_jax`.
"""
