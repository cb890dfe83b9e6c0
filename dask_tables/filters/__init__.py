"""HDF5 filters: chunks decoded on read and encoded on write, outside every lock."""
