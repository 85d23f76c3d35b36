"""Training and optimisation of registered models, as queued tasks, dispatched through backends/."""
