"""Files in object storage and on HTTP servers: where the bytes live when they are not on disk.

Its modules are listed, with what each holds, in the one inventory of the
package: ``docs/architecture.rst``.
"""
