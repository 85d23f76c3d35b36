"""Samplers, session recorder and the gRPC profiler service.

- `frames`: the frame (one sample of one node) and its metric names, with units in the names;
- `samplers`: host (psutil) and GPU (NVML) readings; `loop`: schedule, numbered buffer, thread;
- `node`: the sampler plugin on Dask workers; `collector`: the server's pull of their frames;
- `hub`: deduplication, latest frames, subscriptions; `sessions`: index in SQLite; `framefile`: a
  session's JSON Lines file;
- `summary`, `plot`: a session's statistics and its PNG; `service.Profiler`: all of it together;
- `grpc_server`, `convert`, `_proto`: the gRPC service; `transport`: its TLS and the rule that
  keeps plaintext on loopback; `agent`: the external node agent;
- `gen`: regenerates `_proto` from `proto/gswarm/v1/profiler.proto`.

Importing this package imports nothing heavy; each module imports what it needs.
"""
