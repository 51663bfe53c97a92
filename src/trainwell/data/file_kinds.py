"""Which ``data.name`` reads a user's data file, by its suffix: a module without dependencies, so that the config
reader can name a data file given where a config goes before torch is imported."""

READERS = {".npz": "npz", ".csv": "csv", ".tsv": "csv"}
