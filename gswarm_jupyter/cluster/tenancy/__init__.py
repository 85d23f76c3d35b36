"""Tenancy: who may hold how much of a device. Byte ledgers (one lock, never negative, never past a
device's capacity), the allocations reserved on devices, and virtual GPUs with their memory quota and
compute-unit share; enforced where bytes are placed and where batches run."""
