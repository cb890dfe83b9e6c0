/* A dataset's whole chunk index in one call of HDF5's H5Dchunk_iter, with a C callback.
 *
 * H5Dchunk_iter holds HDF5's global mutex while it calls its callback.  A
 * Python (ctypes) callback needs the GIL there, and a thread that holds the
 * GIL while it waits for HDF5's mutex (plain PyTables does) then deadlocks
 * with it.  This callback is plain C: it needs neither the GIL nor Python,
 * so the call runs with the GIL released and no such cycle can form.
 *
 * No HDF5 header is needed: the caller passes the address of H5Dchunk_iter
 * (found with ctypes in the HDF5 that PyTables loaded), and the types are
 * those of HDF5 1.14: hid_t int64_t, hsize_t and haddr_t uint64_t.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef int (*chunk_iter_op)(const uint64_t *offset, unsigned filter_mask, uint64_t addr, uint64_t size,
                             void *op_data);
typedef int (*chunk_iter_fn)(int64_t dset_id, int64_t dxpl_id, chunk_iter_op op, void *op_data);

typedef struct {
    int ndim;
    size_t count, capacity;
    uint64_t *starts; /* count * ndim */
    uint64_t *addrs;
    uint64_t *sizes;
    uint32_t *masks;
    int out_of_memory;
} Chunks;

static void chunks_free(Chunks *c) {
    free(c->starts);
    free(c->addrs);
    free(c->sizes);
    free(c->masks);
}

static int chunks_grow(Chunks *c) {
    size_t capacity = c->capacity ? 2 * c->capacity : 1024;
    uint64_t *starts = realloc(c->starts, capacity * c->ndim * sizeof(uint64_t));
    if (starts) c->starts = starts;
    uint64_t *addrs = realloc(c->addrs, capacity * sizeof(uint64_t));
    if (addrs) c->addrs = addrs;
    uint64_t *sizes = realloc(c->sizes, capacity * sizeof(uint64_t));
    if (sizes) c->sizes = sizes;
    uint32_t *masks = realloc(c->masks, capacity * sizeof(uint32_t));
    if (masks) c->masks = masks;
    if (!starts || !addrs || !sizes || !masks) {
        c->out_of_memory = 1;
        return -1;
    }
    c->capacity = capacity;
    return 0;
}

static int visit(const uint64_t *offset, unsigned filter_mask, uint64_t addr, uint64_t size, void *op_data) {
    Chunks *c = (Chunks *)op_data;
    if (c->count == c->capacity && chunks_grow(c) < 0) return -1; /* stops the iteration */
    memcpy(c->starts + c->count * c->ndim, offset, c->ndim * sizeof(uint64_t));
    c->addrs[c->count] = addr;
    c->sizes[c->count] = size;
    c->masks[c->count] = filter_mask;
    c->count++;
    return 0;
}

static PyObject *bytes_of(const void *data, size_t nbytes) {
    return PyBytes_FromStringAndSize(nbytes ? (const char *)data : "", (Py_ssize_t)nbytes);
}

static PyObject *iterate(PyObject *self, PyObject *args) {
    unsigned long long function;
    long long dataset;
    int ndim;
    if (!PyArg_ParseTuple(args, "KLi", &function, &dataset, &ndim)) return NULL;
    if (!function || ndim < 1 || ndim > 32) {
        PyErr_SetString(PyExc_ValueError, "iterate(function address, dataset id, ndim 1..32)");
        return NULL;
    }
    Chunks c = {ndim, 0, 0, NULL, NULL, NULL, NULL, 0};
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = ((chunk_iter_fn)(uintptr_t)function)((int64_t)dataset, 0 /* H5P_DEFAULT */, visit, &c);
    Py_END_ALLOW_THREADS
    if (c.out_of_memory) {
        chunks_free(&c);
        return PyErr_NoMemory();
    }
    PyObject *result = Py_BuildValue(
        "(iNNNN)", status, bytes_of(c.starts, c.count * ndim * sizeof(uint64_t)),
        bytes_of(c.addrs, c.count * sizeof(uint64_t)), bytes_of(c.sizes, c.count * sizeof(uint64_t)),
        bytes_of(c.masks, c.count * sizeof(uint32_t)));
    chunks_free(&c);
    return result;
}

static PyMethodDef methods[] = {
    {"iterate", iterate, METH_VARARGS,
     "iterate(h5dchunk_iter_address, dataset_id, ndim) -> (status, starts, addrs, sizes, masks)\n\n"
     "Every stored chunk of the dataset, from one call of H5Dchunk_iter with the GIL released:\n"
     "the HDF5 status, then native-endian uint64 chunk starts (ndim per chunk), file addresses,\n"
     "stored sizes, and uint32 filter masks, as bytes."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_chunkiter",
                                    "H5Dchunk_iter with a C callback (see dask_tables.chunkindex).", -1,
                                    methods};

PyMODINIT_FUNC PyInit__chunkiter(void) { return PyModule_Create(&module); }
