"""Serving: services and their replicas, the worker-side actor, the gateway, and the compute plane
over them."""
