"""LitServe, the peer of gswarm's serving figures (bench_litserve.py): a torch module saved with
`torch.save`, served on 127.0.0.1 by one LitServe worker with dynamic batching.

`python -m benchmarks.litserve_app MODULE PORT MAX_BATCH_SIZE BATCH_TIMEOUT_MS THREADS`. A request
is `{"input_data": [[...], ...]}` (any other field ignored), its answer `{"output_data": [...]}`;
`max_batch_size` counts requests, as LitServe does. The forward pass is the same `predict` the
gswarm worker runs.
"""

from __future__ import annotations

import sys
from typing import Any

import litserve as ls
import numpy as np
import torch
from gswarm_kernels.torch_infer import predict


class RowsAPI(ls.LitAPI):
    def __init__(self, path: str, threads: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path = path
        self.threads = threads

    def setup(self, device: str) -> None:
        torch.set_num_threads(self.threads)
        self.module = torch.load(self.path, weights_only=False).eval()

    # No annotations: LitServe takes them for the request and response types of its route.
    def decode_request(self, request):
        return np.asarray(request["input_data"], dtype=np.float32)

    def batch(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return inputs  # joined in predict, so that each request keeps its own row count

    def predict(self, x: Any) -> Any:
        if not isinstance(x, list):
            return predict(self.module, x)
        out = predict(self.module, np.concatenate(x))
        return np.split(out, np.cumsum([len(a) for a in x])[:-1])

    def unbatch(self, output: Any) -> Any:
        return output

    def encode_response(self, output):
        return {"output_data": output.tolist()}


def main(argv: list[str]) -> None:
    path, port, batch, timeout_ms, threads = argv
    api = RowsAPI(path, int(threads), max_batch_size=int(batch),
                  batch_timeout=float(timeout_ms) / 1000.0)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1)
    server.run(host="127.0.0.1", port=int(port), num_api_servers=1, log_level="warning",
               generate_client_file=False)


if __name__ == "__main__":
    main(sys.argv[1:])
