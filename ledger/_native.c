/* Batch SHA-256 and HMAC-SHA256 over Arrow buffers, with OpenSSL.
 *
 * Nothing here is cryptography of our own: every hash is OpenSSL's SHA-256, and HMAC is
 * RFC 2104 with the key schedule done once. What this module saves is the Python call per
 * entry, which dominates at millions of entries. ledger/hashing.py holds the pure-Python
 * equivalent, used when this extension is not built, and the tests hold them equal.
 * Loops run without the GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>
#include <openssl/sha.h>

#define DIGEST 32
#define BLOCK 64

/* A piece is one column's contribution to every row, read straight from Arrow buffers:
 *   RAW       row r is the bytes of a binary array (offsets) or a fixed-width array (width);
 *   TAGGED    a string/binary value as the canonical encoding has it: tag (1 present, 0 null)
 *             || u32 big-endian length || bytes (a null is 0x00 || 4 zero bytes);
 *   FIXED_BE  a fixed-width number as tag || its bytes reversed to big-endian (a null is
 *             0x00 || width zero bytes);
 *   DICT      as TAGGED, for a dictionary-encoded string column: row r is dictionary value
 *             indices[r]; offsets and data are the dictionary's, width its length.
 * Doing the tags and byte order here saves building them as arrays in Python. */
enum { RAW = 0, TAGGED = 1, FIXED_BE = 2, DICT = 3 };

typedef struct {
    Py_buffer validity;  /* Arrow validity bitmap, when has_validity */
    Py_buffer indices;   /* int32 dictionary indices, for DICT */
    Py_buffer offsets;   /* int32 offsets, when has_offsets */
    Py_buffer data;
    Py_ssize_t start;    /* the Arrow array's logical offset */
    Py_ssize_t width;    /* fixed width when there are no offsets; the dictionary's length for DICT */
    int kind, has_validity, has_offsets;
} piece_t;

static void release_pieces(piece_t *pieces, Py_ssize_t count) {
    for (Py_ssize_t i = 0; i < count; i++) {
        if (pieces[i].has_validity) PyBuffer_Release(&pieces[i].validity);
        if (pieces[i].indices.obj) PyBuffer_Release(&pieces[i].indices);
        if (pieces[i].has_offsets) PyBuffer_Release(&pieces[i].offsets);
        if (pieces[i].data.obj) PyBuffer_Release(&pieces[i].data);
    }
    PyMem_Free(pieces);
}

/* Parse a sequence of (kind, validity or None, indices or None, offsets or None, data,
 * start, width) into piece_t, checking every buffer is long enough for n rows (a DICT
 * piece's indices are checked against the dictionary as they are read); NULL on error. */
static piece_t *parse_pieces(PyObject *fast, Py_ssize_t n, Py_ssize_t *count_out) {
    Py_ssize_t count = PySequence_Fast_GET_SIZE(fast);
    piece_t *pieces = PyMem_Calloc(count ? count : 1, sizeof(piece_t));
    if (!pieces) { PyErr_NoMemory(); return NULL; }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(fast, i);
        PyObject *validity_obj, *indices_obj, *offsets_obj, *data_obj;
        piece_t *p = &pieces[i];
        if (!PyArg_ParseTuple(item, "iOOOOnn", &p->kind, &validity_obj, &indices_obj, &offsets_obj, &data_obj, &p->start, &p->width)) goto fail;
        if (p->kind < RAW || p->kind > DICT || p->start < 0 || p->width < 0) {
            PyErr_SetString(PyExc_ValueError, "bad piece kind, start or width");
            goto fail;
        }
        if (PyObject_GetBuffer(data_obj, &p->data, PyBUF_SIMPLE) < 0) goto fail;
        if (p->kind == DICT) {
            if (indices_obj == Py_None || offsets_obj == Py_None) {
                PyErr_SetString(PyExc_ValueError, "a dictionary piece needs indices and offsets");
                goto fail;
            }
            if (PyObject_GetBuffer(indices_obj, &p->indices, PyBUF_SIMPLE) < 0) goto fail;
            if ((p->start + n) * 4 > p->indices.len) {
                PyErr_SetString(PyExc_ValueError, "indices buffer too short");
                goto fail;
            }
        }
        if (validity_obj != Py_None) {
            if (PyObject_GetBuffer(validity_obj, &p->validity, PyBUF_SIMPLE) < 0) goto fail;
            p->has_validity = 1;
            if ((p->start + n + 7) / 8 > p->validity.len) {
                PyErr_SetString(PyExc_ValueError, "validity bitmap too short");
                goto fail;
            }
        }
        if (offsets_obj != Py_None) {
            if (PyObject_GetBuffer(offsets_obj, &p->offsets, PyBUF_SIMPLE) < 0) goto fail;
            p->has_offsets = 1;
            /* a dictionary's own offsets: `width` entries from its start */
            Py_ssize_t needed = p->kind == DICT ? (p->width + 1) * 4 : (p->start + n + 1) * 4;
            if (needed > p->offsets.len) {
                PyErr_SetString(PyExc_ValueError, "offsets buffer too short");
                goto fail;
            }
        } else if (p->kind == TAGGED || p->kind == DICT) {
            PyErr_SetString(PyExc_ValueError, "a tagged piece needs offsets");
            goto fail;
        } else if ((p->start + n) * p->width > p->data.len) {
            PyErr_SetString(PyExc_ValueError, "fixed-width buffer too short");
            goto fail;
        }
    }
    *count_out = count;
    return pieces;
fail:
    release_pieces(pieces, count);
    return NULL;
}

static inline int piece_valid(const piece_t *p, Py_ssize_t r) {
    if (!p->has_validity) return 1;
    Py_ssize_t bit = p->start + r;
    return (((const unsigned char *)p->validity.buf)[bit >> 3] >> (bit & 7)) & 1;
}

/* Where row r's bytes are in the data buffer, and how many: -1 on corrupt offsets. */
static inline Py_ssize_t piece_source(const piece_t *p, Py_ssize_t r, const unsigned char **src) {
    if (p->kind == DICT) {
        int32_t index = ((const int32_t *)p->indices.buf)[p->start + r];
        if (index < 0 || index >= p->width) return -1;
        const int32_t *off = (const int32_t *)p->offsets.buf + index;
        if (off[0] < 0 || off[1] < off[0] || off[1] > p->data.len) return -1;
        *src = (const unsigned char *)p->data.buf + off[0];
        return off[1] - off[0];
    }
    if (p->has_offsets) {
        const int32_t *off = (const int32_t *)p->offsets.buf + p->start + r;
        if (off[0] < 0 || off[1] < off[0] || off[1] > p->data.len) return -1;
        *src = (const unsigned char *)p->data.buf + off[0];
        return off[1] - off[0];
    }
    *src = (const unsigned char *)p->data.buf + (p->start + r) * p->width;
    return p->width;
}

/* Row r of piece p: its source bytes (src, len), whether it is present, and the size of
 * its encoding; -1 on corrupt offsets. */
typedef struct { const unsigned char *src; Py_ssize_t len; int valid; } located_t;

static inline Py_ssize_t piece_locate(const piece_t *p, Py_ssize_t r, located_t *at) {
    at->valid = p->kind == RAW || piece_valid(p, r);
    if (!at->valid) {  /* a null: tag 0 and zero bytes of the length or the value */
        at->len = 0;
        return p->kind == TAGGED || p->kind == DICT ? 5 : 1 + p->width;
    }
    at->len = piece_source(p, r, &at->src);
    if (at->len < 0) return -1;
    return p->kind == TAGGED || p->kind == DICT ? 5 + at->len : p->kind == FIXED_BE ? 1 + at->len : at->len;
}

/* Write the encoding piece_locate sized at dst. */
static inline void piece_emit(const piece_t *p, const located_t *at, unsigned char *dst) {
    Py_ssize_t len = at->len;
    switch (p->kind) {
    case TAGGED:
    case DICT:
        if (!at->valid) { memset(dst, 0, 5); return; }
        dst[0] = 1;
        dst[1] = (unsigned char)(len >> 24); dst[2] = (unsigned char)(len >> 16);
        dst[3] = (unsigned char)(len >> 8); dst[4] = (unsigned char)len;
        memcpy(dst + 5, at->src, (size_t)len);
        return;
    case FIXED_BE:
        if (!at->valid) { memset(dst, 0, (size_t)(1 + p->width)); return; }
        dst[0] = 1;
        for (Py_ssize_t i = 0; i < len; i++) dst[1 + i] = at->src[len - 1 - i];
        return;
    default:
        memcpy(dst, at->src, (size_t)len);
    }
}

/* leaf_hashes(prefix, pieces, n) -> bytes of n * 32
 * Row r hashes 0x00 || prefix || piece_0[r] || piece_1[r] || ... (pieces as parse_pieces takes them). */
static PyObject *leaf_hashes(PyObject *self, PyObject *args) {
    Py_buffer prefix;
    PyObject *seq;
    Py_ssize_t n, count = 0;
    if (!PyArg_ParseTuple(args, "y*On", &prefix, &seq, &n)) return NULL;
    PyObject *fast = PySequence_Fast(seq, "pieces must be a sequence");
    if (!fast) { PyBuffer_Release(&prefix); return NULL; }
    piece_t *pieces = parse_pieces(fast, n, &count);
    if (!pieces) { Py_DECREF(fast); PyBuffer_Release(&prefix); return NULL; }
    PyObject *out = PyBytes_FromStringAndSize(NULL, n * DIGEST);
    unsigned char *row = out ? PyMem_RawMalloc(4096) : NULL;
    int bad = out ? (row ? 0 : 2) : 3;
    if (!bad) {
        unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(out);
        /* Each row is gathered into one buffer and hashed with one update from a context
         * that has already absorbed 0x00 || prefix: one SHA256_Update per piece, or the
         * one-shot SHA256() (which fetches the algorithm through EVP on every call in
         * OpenSSL 3), both cost more than the copy. */
        size_t cap = 4096;
        SHA256_CTX base;
        SHA256_Init(&base);
        SHA256_Update(&base, "\x00", 1);
        SHA256_Update(&base, prefix.buf, prefix.len);
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t r = 0; r < n && !bad; r++) {
            size_t len = 0;
            for (Py_ssize_t i = 0; i < count; i++) {
                located_t at;
                Py_ssize_t size = piece_locate(&pieces[i], r, &at);
                if (size < 0) { bad = 1; break; }
                if (len + (size_t)size > cap) {
                    while (len + (size_t)size > cap) cap *= 2;
                    unsigned char *grown = PyMem_RawRealloc(row, cap);
                    if (!grown) { bad = 2; break; }
                    row = grown;
                }
                piece_emit(&pieces[i], &at, row + len);
                len += (size_t)size;
            }
            if (!bad) {
                SHA256_CTX ctx = base;
                SHA256_Update(&ctx, row, len);
                SHA256_Final(dst + r * DIGEST, &ctx);
            }
        }
        Py_END_ALLOW_THREADS
    }
    PyMem_RawFree(row);
    release_pieces(pieces, count);
    Py_DECREF(fast);
    PyBuffer_Release(&prefix);
    if (bad) {
        Py_XDECREF(out);
        if (bad == 3) return NULL;
        if (bad == 2) return PyErr_NoMemory();
        PyErr_SetString(PyExc_ValueError, "corrupt offsets in a piece");
        return NULL;
    }
    return out;
}

/* concat_rows(pieces, n) -> (offsets bytes (int32 x n+1), data bytes): row r of the result
 * is piece_0[r] || piece_1[r] || ..., as Arrow's binary_join_element_wise but with memcpy. */
static PyObject *concat_rows(PyObject *self, PyObject *args) {
    PyObject *seq;
    Py_ssize_t n, count = 0;
    if (!PyArg_ParseTuple(args, "On", &seq, &n)) return NULL;
    PyObject *fast = PySequence_Fast(seq, "pieces must be a sequence");
    if (!fast) return NULL;
    piece_t *pieces = parse_pieces(fast, n, &count);
    if (!pieces) { Py_DECREF(fast); return NULL; }
    PyObject *offsets = PyBytes_FromStringAndSize(NULL, (n + 1) * 4);
    PyObject *data = NULL;
    int bad = offsets ? 0 : 3;
    if (!bad) {
        int32_t *off = (int32_t *)PyBytes_AS_STRING(offsets);
        long long total = 0;
        off[0] = 0;
        for (Py_ssize_t r = 0; r < n && !bad; r++) {
            for (Py_ssize_t i = 0; i < count; i++) {
                located_t at;
                Py_ssize_t size = piece_locate(&pieces[i], r, &at);
                if (size < 0) { bad = 1; break; }
                total += size;
            }
            if (total > INT32_MAX) bad = 4;
            off[r + 1] = (int32_t)total;
        }
        if (!bad) {
            data = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
            if (!data) bad = 3;
        }
        if (!bad) {
            unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(data);
            Py_BEGIN_ALLOW_THREADS
            for (Py_ssize_t r = 0; r < n; r++) {
                for (Py_ssize_t i = 0; i < count; i++) {
                    located_t at;
                    Py_ssize_t size = piece_locate(&pieces[i], r, &at);
                    piece_emit(&pieces[i], &at, dst);
                    dst += size;
                }
            }
            Py_END_ALLOW_THREADS
        }
    }
    release_pieces(pieces, count);
    Py_DECREF(fast);
    if (bad) {
        Py_XDECREF(offsets);
        Py_XDECREF(data);
        if (bad == 1) PyErr_SetString(PyExc_ValueError, "corrupt offsets in a piece");
        if (bad == 4) PyErr_SetString(PyExc_OverflowError, "rows exceed 2 GiB");
        return NULL;
    }
    return Py_BuildValue("(NN)", offsets, data);
}

typedef struct { SHA256_CTX inner, outer; } hmac_key_t;

static void hmac_init(hmac_key_t *k, const unsigned char *key, size_t len) {
    unsigned char block[BLOCK], pad[BLOCK];
    memset(block, 0, BLOCK);
    if (len > BLOCK) SHA256(key, len, block); else memcpy(block, key, len);
    for (int i = 0; i < BLOCK; i++) pad[i] = block[i] ^ 0x36;
    SHA256_Init(&k->inner); SHA256_Update(&k->inner, pad, BLOCK);
    for (int i = 0; i < BLOCK; i++) pad[i] = block[i] ^ 0x5c;
    SHA256_Init(&k->outer); SHA256_Update(&k->outer, pad, BLOCK);
}

static void hmac_link(const hmac_key_t *k, const unsigned char *prev, const unsigned char *leaf, unsigned char *out) {
    unsigned char inner_digest[DIGEST];
    SHA256_CTX ctx = k->inner;
    SHA256_Update(&ctx, prev, DIGEST);
    SHA256_Update(&ctx, leaf, DIGEST);
    SHA256_Final(inner_digest, &ctx);
    ctx = k->outer;
    SHA256_Update(&ctx, inner_digest, DIGEST);
    SHA256_Final(out, &ctx);
}

/* hmac_chain(key, prev, leaves) -> bytes: mac_i = HMAC(key, mac_{i-1} || leaf_i) */
static PyObject *hmac_chain(PyObject *self, PyObject *args) {
    Py_buffer key, prev, leaves;
    if (!PyArg_ParseTuple(args, "y*y*y*", &key, &prev, &leaves)) return NULL;
    PyObject *out = NULL;
    if (prev.len != DIGEST || leaves.len % DIGEST) {
        PyErr_SetString(PyExc_ValueError, "prev must be 32 bytes and leaves a multiple of 32");
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, leaves.len);
    if (!out) goto done;
    unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(out);
    Py_BEGIN_ALLOW_THREADS
    hmac_key_t k;
    hmac_init(&k, key.buf, key.len);
    const unsigned char *p = prev.buf, *leaf = leaves.buf;
    Py_ssize_t n = leaves.len / DIGEST;
    for (Py_ssize_t i = 0; i < n; i++) {
        hmac_link(&k, p, leaf + i * DIGEST, dst + i * DIGEST);
        p = dst + i * DIGEST;
    }
    OPENSSL_cleanse(&k, sizeof k);
    Py_END_ALLOW_THREADS
done:
    PyBuffer_Release(&key); PyBuffer_Release(&prev); PyBuffer_Release(&leaves);
    return out;
}

/* hmac_links(key, prevs, leaves) -> bytes: HMAC(key, prevs[i] || leaves[i]) for each i */
static PyObject *hmac_links(PyObject *self, PyObject *args) {
    Py_buffer key, prevs, leaves;
    if (!PyArg_ParseTuple(args, "y*y*y*", &key, &prevs, &leaves)) return NULL;
    PyObject *out = NULL;
    if (prevs.len != leaves.len || leaves.len % DIGEST) {
        PyErr_SetString(PyExc_ValueError, "prevs and leaves must be equal multiples of 32 bytes");
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, leaves.len);
    if (!out) goto done;
    unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(out);
    Py_BEGIN_ALLOW_THREADS
    hmac_key_t k;
    hmac_init(&k, key.buf, key.len);
    Py_ssize_t n = leaves.len / DIGEST;
    for (Py_ssize_t i = 0; i < n; i++)
        hmac_link(&k, (const unsigned char *)prevs.buf + i * DIGEST, (const unsigned char *)leaves.buf + i * DIGEST, dst + i * DIGEST);
    OPENSSL_cleanse(&k, sizeof k);
    Py_END_ALLOW_THREADS
done:
    PyBuffer_Release(&key); PyBuffer_Release(&prevs); PyBuffer_Release(&leaves);
    return out;
}

/* node_hashes(level) -> bytes: SHA-256(0x01 || level[2i] || level[2i+1]) for each pair;
 * an odd last hash is not paired (the caller carries it up, as RFC 6962 trees do). */
static PyObject *node_hashes(PyObject *self, PyObject *args) {
    Py_buffer level;
    if (!PyArg_ParseTuple(args, "y*", &level)) return NULL;
    PyObject *out = NULL;
    if (level.len % DIGEST) {
        PyErr_SetString(PyExc_ValueError, "level must be a multiple of 32 bytes");
        goto done;
    }
    Py_ssize_t pairs = level.len / DIGEST / 2;
    out = PyBytes_FromStringAndSize(NULL, pairs * DIGEST);
    if (!out) goto done;
    unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(out);
    Py_BEGIN_ALLOW_THREADS
    SHA256_CTX base;
    SHA256_Init(&base);
    SHA256_Update(&base, "\x01", 1);
    const unsigned char *src = level.buf;
    for (Py_ssize_t i = 0; i < pairs; i++) {
        SHA256_CTX ctx = base;
        SHA256_Update(&ctx, src + 2 * i * DIGEST, 2 * DIGEST);
        SHA256_Final(dst + i * DIGEST, &ctx);
    }
    Py_END_ALLOW_THREADS
done:
    PyBuffer_Release(&level);
    return out;
}

static PyMethodDef methods[] = {
    {"leaf_hashes", leaf_hashes, METH_VARARGS, "RFC 6962 leaf hashes of rows given as Arrow buffer pieces."},
    {"concat_rows", concat_rows, METH_VARARGS, "Concatenate pieces row by row (offsets, data)."},
    {"hmac_chain", hmac_chain, METH_VARARGS, "HMAC-SHA256 chain over consecutive leaves."},
    {"hmac_links", hmac_links, METH_VARARGS, "HMAC-SHA256 of each (prev, leaf) pair."},
    {"node_hashes", node_hashes, METH_VARARGS, "RFC 6962 interior node hashes of adjacent pairs."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", NULL, -1, methods};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
