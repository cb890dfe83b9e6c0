"""PyTables' threading cookbook, "monkey-patching" solution, via dask_tables.

``dask_tables.registry.patch()`` makes plain ``tables.open_file`` (and
``with`` blocks, ``File.close`` and ``tables.File``) thread-safe; the thread
function below is unchanged PyTables code.  ``unpatch()`` restores PyTables.

Run: ``python threading_monkeypatch.py`` (writes ``threading_monkeypatch.h5`` here).
"""

import os
import queue
import threading

import numpy as np
import tables as tb

from dask_tables.registry import patch, unpatch

SIZE = 100
NTHREADS = 5
FILENAME = "threading_monkeypatch.h5"
H5PATH = "/array"


def create_test_file(filename):
    data = np.random.rand(SIZE, SIZE)
    with tb.open_file(filename, "w") as h5file:
        h5file.create_array("/", "array", title="Test Array", obj=data)


def chunk_generator(data_size, nchunks):
    chunk_size = int(np.ceil(data_size / nchunks))
    for start in range(0, data_size, chunk_size):
        yield slice(start, start + chunk_size)


def run(filename, path, inqueue, outqueue):
    try:
        yslice = inqueue.get()
        with tb.open_file(filename, mode="r") as h5file:
            h5array = h5file.get_node(path)
            data = h5array[yslice, ...]
        psum = np.sum(data)
    except Exception as e:
        outqueue.put(e)
    else:
        outqueue.put(psum)


def main():
    # generate the test data
    if not os.path.exists(FILENAME):
        create_test_file(FILENAME)

    threads = []
    inqueue = queue.Queue()
    outqueue = queue.Queue()

    # start all threads
    for _ in range(NTHREADS):
        thread = threading.Thread(target=run, args=(FILENAME, H5PATH, inqueue, outqueue))
        thread.start()
        threads.append(thread)

    # push requests in the input queue
    for yslice in chunk_generator(SIZE, len(threads)):
        inqueue.put(yslice)

    # collect results
    try:
        mean_ = 0.0
        for _ in range(len(threads)):
            out = outqueue.get()
            if isinstance(out, Exception):
                raise out
            mean_ += out
        mean_ /= SIZE * SIZE
    finally:
        for thread in threads:
            thread.join()

    # print results
    print(f"Mean: {mean_}")


if __name__ == "__main__":
    patch()  # make plain PyTables thread-safe
    try:
        main()
    finally:
        unpatch()
