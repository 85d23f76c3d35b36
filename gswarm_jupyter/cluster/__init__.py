"""Everything Dask: the cluster's lifecycle, the node agent and its worker-side stores."""
