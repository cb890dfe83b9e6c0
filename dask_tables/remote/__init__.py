"""Files in object storage and on HTTP servers: where the bytes live when they are not on disk.

``urls`` (what a URL is, how it is shown without secrets, ``storage_options``),
``ranges`` (chunk ranges merged into requests), ``transport`` (the object's
version and conditional ranged GETs through obstore), ``shadow`` (the local
file of the object's metadata that PyTables opens), ``locations`` (paths,
URLs and URL patterns expanded).
"""
