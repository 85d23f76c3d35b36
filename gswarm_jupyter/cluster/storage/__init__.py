"""One copy engine for the bytes on the nodes, with two kinds of payload: data-pool chunks and
model weights."""
