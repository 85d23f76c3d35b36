"""`%gswarm` and `%%gswarm`: a thin adapter from IPython to the SDK."""
