"""Serving: services (started, stopped, restored) and their replicas, the worker-side actor, the
gateway that routes requests to live replicas, and the compute plane over them."""
