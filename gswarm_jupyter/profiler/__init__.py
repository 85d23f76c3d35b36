"""Samplers, session recorder and the gRPC profiler service."""
