"""Stubs generated from proto/gswarm/v1/profiler.proto: do not edit."""
