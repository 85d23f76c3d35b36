"""Framework runners (torch, JAX) over `gswarm_kernels`."""
