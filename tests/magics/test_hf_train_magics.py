"""Training Hugging Face models on strings with one call or one magic, against a real server:
`%gswarm train` takes a variable holding a list of strings (a causal model, next-token loss), and
`client.compute.train` / `optimize` take string rows and one-hot labels (an encoder gaining a
head)."""

from __future__ import annotations

from IPython.utils.capture import capture_output

from ..kernels.hf_models import tiny_bert_dir, tiny_gpt2_dir

TEXTS = ["the quick brown fox jumps over the lazy dog", "a swarm of small models answers",
         "hello world, tokens go in", "GPUs and CPUs share the work"]


def test_train_magic_and_sdk_take_string_rows(ip, client, live_server):
    folder = tiny_gpt2_dir(live_server.root / "train-gpt2")  # under the server's root
    client.models.register("mg-hf-tlm", folder.as_uri())
    ip.user_ns["texts"] = TEXTS
    with capture_output() as cap:
        ip.run_line_magic("gswarm", "train mg-hf-tlm --data texts --epochs 2 --lr 0.03 "
                                    "--batch 2 -o kept")
    kept = ip.user_ns["kept"]
    assert kept["status"] == "completed" and kept["version"] == 2, kept
    assert kept["loss_history"][-1] < kept["loss_history"][0]
    assert "model updated to version 2" in cap.stdout
    assert client.models.get("mg-hf-tlm")["version"] == 2

    encoder = tiny_bert_dir(live_server.root / "train-bert")
    client.models.register("mg-hf-tenc", encoder.as_uri())
    one_hot = [[1, 0], [0, 1], [0, 1], [1, 0]]  # two classes, as one-hot rows
    result = client.compute.train("mg-hf-tenc", TEXTS, one_hot, epochs=2,
                                  learning_rate=1e-3, batch_size=4, framework="jax")
    assert result["framework"] == "jax"
    assert result["model_updated"] and result["version"] == 2
    assert result["loss_history"][-1] < result["loss_history"][0]
    record = client.models.get("mg-hf-tenc")
    assert record["model_type"] == "classifier" and record["metadata"]["labels"] == [
        "LABEL_0", "LABEL_1"]
    opt = client.compute.optimize("mg-hf-tenc", "int8", calibration_data=TEXTS)
    assert opt["optimized_model_id"] == "mg-hf-tenc-int8" and opt["accuracy_loss"] > 0
