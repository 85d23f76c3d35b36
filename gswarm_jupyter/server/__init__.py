"""The Jupyter server extension: `GswarmApp`, its handlers, and the OpenAPI document."""
