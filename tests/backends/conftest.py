"""Hugging Face model directories shared with the kernel tests."""

from ..kernels.hf_models import bert_classifier_path, gpt2_path, minilm_path  # noqa: F401
