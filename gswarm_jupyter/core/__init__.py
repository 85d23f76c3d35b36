"""The domain: records, errors, names, policies. Imports the standard library and pydantic only."""
