"""The cluster wing's ground: the Dask cluster's lifecycle, the node agent, its devices, and the
task executor with the worker-side signals of its tasks."""
