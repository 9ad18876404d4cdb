/*
 * The SDK's hot path in C: Region.__enter__/__exit__, the shared no-op object, region(name).
 *
 * Why C: in Python a `with` over Python-level __enter__/__exit__ costs ~120 ns and two
 * time.perf_counter_ns() calls ~100 ns before anything is recorded.  Here a region is two C method
 * calls that each read the clock and store ONE int64 into the calling thread's stream.
 *
 * The event encoding is the pure-Python recorder's (collectors/runtime/_recorder.py), so both
 * paths feed the same decoder: a begin is -((site + 1) << TIME_BITS) - now, an end is now; a
 * region with numbers (flops, bytes) sets METRICS_FLAG in its site and writes the two float64s
 * right after its begin.  region(name, flops=, bytes=, dtype=, engine=, category=) is taken here
 * entirely (a cached site plus a small per-call Span holding the numbers); only flow_from, args
 * and values that need a check with a message go through Python.
 *
 * Memory: streams grow by drawing from one session budget (g_budget, bytes).  When it is spent a
 * begin is refused and counted (Stream.dropped) and so is its end (Stream.drop_depth); the end of a
 * region whose begin was kept always gets room.
 *
 * Nothing here waits on a lock: a signal handler (which runs in the main thread between bytecodes,
 * so only inside the Python callbacks below) can record without deadlocking on the code it
 * interrupted.
 *
 * Clock: CLOCK_MONOTONIC through clock_gettime, the clock time.perf_counter_ns() reads on Linux,
 * so C and Python timestamps mix (collectors/runtime/_native.py checks this at import and falls
 * back to Python when they disagree).
 *
 * Threads: each OS thread caches (session generation, its Stream, its ThreadBuffer) in C
 * thread-local storage.  The GIL is held in every function here, so a stream is only ever written
 * by its own thread, and enable/disable cannot interleave with a half-written event.  A thread's
 * first event in a session calls back into Python, which makes a ThreadBuffer and registers it
 * under the recorder's lock; the registry owns it, the thread-local cache only borrows it and is
 * trusted only while its generation equals the current one (every enable/disable bumps it).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

#if defined(_WIN32)
#include <windows.h>
#define TLS __declspec(thread)
#else
#include <time.h>
#define TLS _Thread_local
#endif

/* ------------------------------------------------------------------------------ clock */
static inline int64_t
now_ns(void)
{
#if defined(_WIN32)
    static LARGE_INTEGER freq = {0};
    LARGE_INTEGER c;
    if (freq.QuadPart == 0) QueryPerformanceFrequency(&freq);
    QueryPerformanceCounter(&c);
    return (int64_t)((c.QuadPart / freq.QuadPart) * 1000000000LL
                     + (c.QuadPart % freq.QuadPart) * 1000000000LL / freq.QuadPart);
#elif defined(__APPLE__)
    return (int64_t)clock_gettime_nsec_np(CLOCK_UPTIME_RAW);
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
#endif
}

/* ---------------------------------------------------------------------------- globals */
static int g_on = 0;            /* a session records */
static uint64_t g_gen = 1;      /* bumped on every enable/disable: stale thread caches miss */
static int g_time_bits = 45;
static long long g_metrics_flag = 1LL << 16; /* site bit: two number words follow the begin */
static long long g_budget = 0;  /* bytes the session's streams may still draw */
static PyObject *g_intern = NULL;      /* (name, engine, dtype, category, args) -> site */
static PyObject *g_register = NULL;    /* () -> ThreadBuffer whose .stream is a Stream */
static PyObject *g_slow_region = NULL; /* region(...) for calls other than region(name) */
static PyObject *g_by_name = NULL;     /* dict: name -> Region, filled by the slow path */
static PyObject *g_by_key = NULL;      /* dict: (name, dtype, engine, category) -> Region, same */
static PyObject *s_kw[6];              /* interned "name", "flops", "bytes", "dtype", "engine", "category" */
static PyObject *g_noop = NULL;        /* the shared no-op object */

#define INITIAL_CAPACITY 8192  /* events (64 KiB) preallocated per thread and session */
#define FORCED_GROWTH 1024     /* events added when a stream must grow past a spent budget */
#define NAN_BITS 0x7FF8000000000000LL /* a positive quiet NaN: "no value" */

/* ----------------------------------------------------------------------------- Stream */
typedef struct {
    PyObject_HEAD
    int64_t *data;
    Py_ssize_t len;
    Py_ssize_t cap;
    Py_ssize_t exports;
    Py_ssize_t dropped;    /* events refused for lack of budget */
    Py_ssize_t drop_depth; /* refused regions still open: their ends are refused too */
    /* Blocks outgrown while a view still read them: freed when the last view goes. */
    int64_t **stale;
    Py_ssize_t n_stale;
} StreamObject;

static void
stream_free_stale(StreamObject *s)
{
    for (Py_ssize_t i = 0; i < s->n_stale; i++) PyMem_RawFree(s->stale[i]);
    PyMem_RawFree(s->stale);
    s->stale = NULL;
    s->n_stale = 0;
}

static PyTypeObject StreamType;

/* Move the events to a block of `cap` events (cap >= len). */
static int
stream_resize(StreamObject *s, Py_ssize_t cap)
{
    if (cap > PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(int64_t)) {
        PyErr_NoMemory();
        return -1;
    }
    int64_t *d;
    if (s->exports > 0 && s->data != NULL) {
        /* A view reads the current block (a late point event while the session flushes):
         * copy instead of moving it, and keep the old block until the view goes. */
        int64_t **stale = PyMem_RawRealloc(s->stale, (size_t)(s->n_stale + 1) * sizeof(int64_t *));
        if (stale == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        s->stale = stale;
        d = PyMem_RawMalloc((size_t)cap * sizeof(int64_t));
        if (d == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(d, s->data, (size_t)s->len * sizeof(int64_t));
        s->stale[s->n_stale++] = s->data;
    }
    else {
        d = PyMem_RawRealloc(s->data, (size_t)cap * sizeof(int64_t));
        if (d == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    s->data = d;
    s->cap = cap;
    return 0;
}

/* Room for `want` events: doubling, paid from the budget.  Returns 0 when there is room, 1 when
 * the budget cannot pay (nothing changed), -1 on error.  `forced` (an end event, or a point the
 * Python side admitted) always gets room: a small step, whatever is left of the budget. */
static int
stream_grow(StreamObject *s, Py_ssize_t want, int forced)
{
    if (want <= s->cap) return 0;
    Py_ssize_t cap = s->cap ? s->cap : INITIAL_CAPACITY;
    while (cap < want) {
        if (cap > PY_SSIZE_T_MAX / 4 / (Py_ssize_t)sizeof(int64_t)) {
            PyErr_NoMemory();
            return -1;
        }
        cap *= 2;
    }
    long long cost = (long long)(cap - s->cap) * (long long)sizeof(int64_t);
    if (cost > g_budget) {
        if (!forced) return 1;
        cap = want + FORCED_GROWTH;
        cost = (long long)(cap - s->cap) * (long long)sizeof(int64_t);
    }
    if (stream_resize(s, cap) < 0) return -1;
    g_budget = cost > g_budget ? 0 : g_budget - cost;
    return 0;
}

static inline int
stream_push(StreamObject *s, int64_t v)
{
    if (s->len == s->cap && stream_grow(s, s->len + 1, 1) < 0) return -1;
    s->data[s->len++] = v;
    return 0;
}

static PyObject *
stream_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    Py_ssize_t cap = INITIAL_CAPACITY;
    static char *kw[] = {"capacity", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|n:Stream", kw, &cap)) return NULL;
    StreamObject *s = (StreamObject *)type->tp_alloc(type, 0);
    if (s == NULL) return NULL;
    /* Preallocate what the budget pays for (a stream made outside a session starts empty). */
    if (cap > 0 && (long long)cap * (long long)sizeof(int64_t) <= g_budget) {
        if (stream_resize(s, cap) < 0) {
            Py_DECREF(s);
            return NULL;
        }
        g_budget -= (long long)cap * (long long)sizeof(int64_t);
    }
    return (PyObject *)s;
}

static void
stream_dealloc(StreamObject *s)
{
    PyMem_RawFree(s->data);
    stream_free_stale(s);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static PyObject *
stream_append(StreamObject *s, PyObject *v)
{
    long long x = PyLong_AsLongLong(v);
    if (x == -1 && PyErr_Occurred()) return NULL;
    if (stream_push(s, (int64_t)x) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *
stream_clear(StreamObject *s, PyObject *Py_UNUSED(ignored))
{
    /* Free the memory; while a view still reads it, keep it until the view goes (later events
     * then go to a new block rather than over what the view shows). */
    if (s->exports > 0 && s->data != NULL) {
        int64_t **stale = PyMem_RawRealloc(s->stale, (size_t)(s->n_stale + 1) * sizeof(int64_t *));
        if (stale == NULL) return PyErr_NoMemory();
        s->stale = stale;
        s->stale[s->n_stale++] = s->data;
    }
    else {
        PyMem_RawFree(s->data);
    }
    s->data = NULL;
    s->len = 0;
    s->cap = 0;
    Py_RETURN_NONE;
}

static Py_ssize_t
stream_length(StreamObject *s)
{
    return s->len;
}

static int
stream_getbuffer(StreamObject *s, Py_buffer *view, int flags)
{
    static int64_t empty = 0;
    if (flags & PyBUF_WRITABLE) {
        PyErr_SetString(PyExc_BufferError, "a stream is exported read-only");
        view->obj = NULL;
        return -1;
    }
    Py_ssize_t *shape = PyMem_Malloc(sizeof(Py_ssize_t));
    if (shape == NULL) {
        PyErr_NoMemory();
        view->obj = NULL;
        return -1;
    }
    *shape = s->len;
    view->obj = Py_NewRef(s);
    view->buf = s->data ? (void *)s->data : (void *)&empty;
    view->len = s->len * (Py_ssize_t)sizeof(int64_t);
    view->readonly = 1;
    view->itemsize = sizeof(int64_t);
    view->format = (flags & PyBUF_FORMAT) ? "q" : NULL;
    view->ndim = 1;
    view->shape = (flags & PyBUF_ND) ? shape : NULL;
    view->strides = (flags & PyBUF_STRIDES) == PyBUF_STRIDES ? &view->itemsize : NULL;
    view->suboffsets = NULL;
    view->internal = shape;
    s->exports++;
    return 0;
}

static void
stream_releasebuffer(StreamObject *s, Py_buffer *view)
{
    PyMem_Free(view->internal);
    if (--s->exports == 0 && s->n_stale) stream_free_stale(s);
}

static PyBufferProcs stream_as_buffer = {
    (getbufferproc)stream_getbuffer,
    (releasebufferproc)stream_releasebuffer,
};

static PySequenceMethods stream_as_sequence = {
    .sq_length = (lenfunc)stream_length,
};

static PyObject *
stream_get_capacity(StreamObject *s, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(s->cap);
}

static PyObject *
stream_get_dropped(StreamObject *s, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(s->dropped);
}

static PyMethodDef stream_methods[] = {
    {"append", (PyCFunction)stream_append, METH_O, "Append one int64 event."},
    {"clear", (PyCFunction)stream_clear, METH_NOARGS, "Drop all events and free the memory."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef stream_getset[] = {
    {"capacity", (getter)stream_get_capacity, NULL, "Events that fit before the next growth.", NULL},
    {"dropped", (getter)stream_get_dropped, NULL, "Regions refused because the memory budget was spent.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject StreamType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "collectors.runtime._cregion.Stream",
    .tp_doc = "One thread's int64 events; exports a read-only buffer (numpy.frombuffer reads it without a copy).",
    .tp_basicsize = sizeof(StreamObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = stream_new,
    .tp_dealloc = (destructor)stream_dealloc,
    .tp_methods = stream_methods,
    .tp_getset = stream_getset,
    .tp_as_buffer = &stream_as_buffer,
    .tp_as_sequence = &stream_as_sequence,
};

/* ------------------------------------------------------------------ per-thread stream */
typedef struct {
    uint64_t gen;
    StreamObject *stream; /* borrowed: the recorder's registry owns it for the session */
    PyObject *tbuf;       /* borrowed ThreadBuffer */
} ThreadCache;

static TLS ThreadCache t_cache;

/* Make and register this thread's buffer through Python and cache it; returns a new reference
 * to the ThreadBuffer.
 *
 * Why borrowing is safe: the cache is read only while its generation is the current one.  The
 * generation read before the callback is stored, so when a session stopped or started while the
 * callback ran (it runs Python code, other threads may too), the entry is stale at once.  The
 * recorder bumps the generation before it lets go of a registry (it disables before the session
 * drops its buffers and enables before it replaces the registry), so an entry of the current
 * generation always points into the live registry. */
static PyObject *
register_thread(void)
{
    if (g_register == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "collectors.runtime._cregion is not configured");
        return NULL;
    }
    uint64_t gen = g_gen;
    PyObject *tb = PyObject_CallNoArgs(g_register);
    if (tb == NULL) return NULL;
    PyObject *st = PyObject_GetAttrString(tb, "stream");
    if (st == NULL) {
        Py_DECREF(tb);
        return NULL;
    }
    if (!PyObject_TypeCheck(st, &StreamType)) {
        PyErr_SetString(PyExc_TypeError, "the registered buffer's stream is not a _cregion.Stream");
        Py_DECREF(st);
        Py_DECREF(tb);
        return NULL;
    }
    t_cache.stream = (StreamObject *)st;
    t_cache.tbuf = tb;
    t_cache.gen = gen;
    Py_DECREF(st); /* tb keeps it */
    return tb;
}

/* ----------------------------------------------------------------------------- Region
 *
 * `with r:` looks __enter__ and __exit__ up on the type and binds them to r.  A C method would be
 * bound by allocating a builtin-method object (GC-tracked, so it also drives the cyclic collector)
 * twice per region: ~70 ns, more than the recording itself.  So nothing here is bound per use:
 *  - Region.__exit__ is ONE shared Hook, not a descriptor: found and called as is (an end event
 *    needs no region: it is just the time).
 *  - Region.__enter__ is a descriptor whose binding returns the Hook the region made once at
 *    creation.  The hook holds its region (BEFORE_WITH drops the context manager before calling
 *    __enter__, so a temporary region lives on through it); the resulting cycle region <-> hook is
 *    the collector's, both types support GC.
 */
typedef struct RegionObject RegionObject;

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    RegionObject *region; /* strong; NULL for the shared hooks */
} HookObject;

struct RegionObject {
    PyObject_HEAD
    int64_t neg; /* -(((site | METRICS_FLAG if numbers) + 1) << TIME_BITS) */
    long long site;
    PyObject *name;
    HookObject *enter_hook;
    int nwords;        /* 1, or 3 with the numbers */
    int64_t fbits;     /* flops, bytes as float64 bits */
    int64_t bbits;
};

/* A region() call with numbers: the site of a cached Region plus this call's flops and bytes.
 * One small object per call, not tracked by the GC (it holds a str only).  `with` finds its
 * __enter__ through a descriptor that returns the Span itself, and calling a Span with no
 * arguments enters it: nothing is allocated to bind the method. */
typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    int64_t neg;
    long long site;
    PyObject *name;
    int64_t fbits;
    int64_t bbits;
} SpanObject;

static PyTypeObject SpanType;

static PyTypeObject HookType;
static PyTypeObject RegionType;

/* Record a begin (and its numbers): 0, or -1 with an exception set. */
static inline int
record_begin(int64_t neg, int nwords, int64_t fbits, int64_t bbits)
{
    if (!g_on) return 0;
    if (t_cache.gen != g_gen) {
        PyObject *tb = register_thread();
        if (tb == NULL) return -1;
        Py_DECREF(tb);
        if (!g_on || t_cache.gen != g_gen) return 0; /* the session changed meanwhile */
    }
    StreamObject *s = t_cache.stream;
    if (s->len + nwords > s->cap) {
        int r = stream_grow(s, s->len + nwords, 0);
        if (r < 0) return -1;
        if (r > 0) { /* budget spent: refuse the region, and its end */
            s->dropped++;
            s->drop_depth++;
            return 0;
        }
    }
    int64_t *d = s->data + s->len;
    d[0] = neg - now_ns();
    if (nwords == 3) {
        d[1] = fbits;
        d[2] = bbits;
    }
    s->len += nwords;
    return 0;
}

static inline PyObject *
do_enter(RegionObject *self)
{
    if (record_begin(self->neg, self->nwords, self->fbits, self->bbits) < 0) return NULL;
    return Py_NewRef(self);
}

static inline PyObject *
do_exit(void)
{
    /* No buffer of this session yet: the session began inside this region, nothing to close. */
    if (g_on && t_cache.gen == g_gen) {
        StreamObject *s = t_cache.stream;
        if (s->drop_depth > 0) {
            s->drop_depth--;
        }
        else {
            if (s->len == s->cap && stream_grow(s, s->len + 1, 1) < 0) return NULL;
            s->data[s->len++] = now_ns();
        }
    }
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------- value checks
 * The same checks, with the same messages, as collectors/runtime/_sites.py. */

/* flops or bytes: None (-> NaN bits) or a finite number >= 0.  Returns 0, or -1 with an error. */
static int
number_bits(PyObject *v, const char *what, int64_t *bits)
{
    if (v == Py_None) {
        *bits = NAN_BITS;
        return 0;
    }
    double f;
    if (PyFloat_CheckExact(v)) {
        f = PyFloat_AS_DOUBLE(v);
    }
    else if (PyBool_Check(v) || PyUnicode_Check(v) || PyBytes_Check(v) || PyByteArray_Check(v)
             || !(Py_TYPE(v)->tp_as_number != NULL
                  && (Py_TYPE(v)->tp_as_number->nb_float != NULL || Py_TYPE(v)->tp_as_number->nb_index != NULL))) {
        PyErr_Format(PyExc_TypeError, "region %s must be a number or None, not %.200s", what, Py_TYPE(v)->tp_name);
        return -1;
    }
    else {
        f = PyFloat_AsDouble(v);
        if (f == -1.0 && PyErr_Occurred()) return -1;
    }
    if (!(f >= 0.0) || f == Py_HUGE_VAL) {
        PyObject *r = PyFloat_FromDouble(f);
        if (r == NULL) return -1;
        PyErr_Format(PyExc_ValueError, "region %s must be a finite number >= 0, got %R", what, r);
        Py_DECREF(r);
        return -1;
    }
    f += 0.0; /* -0.0 -> 0.0: its bits would be negative */
    memcpy(bits, &f, sizeof f);
    return 0;
}

static double
bits_value(int64_t bits)
{
    double f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* The begin base value of a site, with or without numbers; -1 with an error when it cannot be encoded. */
static int
site_neg(long long sid, int with_numbers, int64_t *neg)
{
    if (sid < 0 || sid >= g_metrics_flag) {
        PyErr_Format(PyExc_OverflowError, "site id %lld does not fit the event encoding", sid);
        return -1;
    }
    long long code = with_numbers ? (sid | g_metrics_flag) : sid;
    if (code + 1 > (INT64_MAX >> g_time_bits)) {
        PyErr_Format(PyExc_OverflowError, "site id %lld does not fit the event encoding", sid);
        return -1;
    }
    *neg = -((int64_t)(code + 1) << g_time_bits);
    return 0;
}

static PyObject *
hook_enter_vc(HookObject *h, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 0 || (kwnames && PyTuple_GET_SIZE(kwnames))) {
        PyErr_SetString(PyExc_TypeError, "__enter__() takes no arguments");
        return NULL;
    }
    if (h->region == NULL) {
        PyErr_SetString(PyExc_ReferenceError, "the region of this __enter__ no longer exists");
        return NULL;
    }
    return do_enter(h->region);
}

static PyObject *
hook_exit_vc(HookObject *h, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    return do_exit();
}

static PyObject *
hook_noop_enter_vc(HookObject *h, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    return Py_NewRef(g_noop);
}

static PyObject *
hook_noop_exit_vc(HookObject *h, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_RETURN_NONE;
}

static HookObject *
hook_new(vectorcallfunc fn, RegionObject *region)
{
    HookObject *h = PyObject_GC_New(HookObject, &HookType);
    if (h == NULL) return NULL;
    h->vectorcall = fn;
    h->region = (RegionObject *)Py_XNewRef((PyObject *)region);
    PyObject_GC_Track(h);
    return h;
}

static int
hook_traverse(HookObject *h, visitproc visit, void *arg)
{
    Py_VISIT(h->region);
    return 0;
}

static int
hook_clear(HookObject *h)
{
    Py_CLEAR(h->region);
    return 0;
}

static void
hook_dealloc(HookObject *h)
{
    PyObject_GC_UnTrack(h);
    Py_CLEAR(h->region);
    PyObject_GC_Del(h);
}

static PyObject *
hook_repr(HookObject *h)
{
    const char *what = (h->vectorcall == (vectorcallfunc)hook_enter_vc
                        || h->vectorcall == (vectorcallfunc)hook_noop_enter_vc) ? "__enter__" : "__exit__";
    if (h->region == NULL) return PyUnicode_FromFormat("<shared %s hook>", what);
    return PyUnicode_FromFormat("<%s of %R>", what, (PyObject *)h->region);
}

static PyTypeObject HookType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "collectors.runtime._cregion.Hook",
    .tp_doc = "A region's __enter__ or __exit__, bound once (see the comment in _cregion.c).",
    .tp_basicsize = sizeof(HookObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_HAVE_GC,
    .tp_vectorcall_offset = offsetof(HookObject, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_traverse = (traverseproc)hook_traverse,
    .tp_clear = (inquiry)hook_clear,
    .tp_dealloc = (destructor)hook_dealloc,
    .tp_repr = (reprfunc)hook_repr,
};

/* Region.__enter__ in the type dict: binding returns the region's own hook; called on the class
 * (Region.__enter__(r), as a subclass overriding __enter__ does) it takes the region. */
typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
} EnterDescrObject;

static PyObject *
enterdescr_get(EnterDescrObject *d, PyObject *obj, PyObject *type)
{
    if (obj == NULL || obj == Py_None) return Py_NewRef(d);
    if (!PyObject_TypeCheck(obj, &RegionType)) {
        PyErr_SetString(PyExc_TypeError, "Region.__enter__ needs a Region");
        return NULL;
    }
    return Py_NewRef((PyObject *)((RegionObject *)obj)->enter_hook);
}

static PyObject *
enterdescr_vc(EnterDescrObject *d, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 1 || !PyObject_TypeCheck(args[0], &RegionType)
        || (kwnames && PyTuple_GET_SIZE(kwnames))) {
        PyErr_SetString(PyExc_TypeError, "Region.__enter__ takes exactly one Region");
        return NULL;
    }
    return do_enter((RegionObject *)args[0]);
}

static void
enterdescr_dealloc(EnterDescrObject *d)
{
    PyObject_Free(d);
}

static PyTypeObject EnterDescrType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "collectors.runtime._cregion.EnterDescriptor",
    .tp_doc = "Region.__enter__: binds to the region's preallocated hook.",
    .tp_basicsize = sizeof(EnterDescrObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(EnterDescrObject, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_descr_get = (descrgetfunc)enterdescr_get,
    .tp_dealloc = (destructor)enterdescr_dealloc,
};

static PyObject *
region_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    RegionObject *self = (RegionObject *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->enter_hook = hook_new((vectorcallfunc)hook_enter_vc, self);
    if (self->enter_hook == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    /* Until __init__ interns a site, events go to the overflow site (1). */
    self->site = 1;
    self->neg = -((int64_t)2 << g_time_bits);
    self->nwords = 1;
    return (PyObject *)self;
}

static int
region_traverse(RegionObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->enter_hook);
    Py_VISIT(self->name);
    return 0;
}

static int
region_clear(RegionObject *self)
{
    Py_CLEAR(self->enter_hook);
    Py_CLEAR(self->name);
    return 0;
}

static int
region_init(RegionObject *self, PyObject *args, PyObject *kwds)
{
    static char *kw[] = {"name", "flops", "bytes", "dtype", "engine", "category", "args", NULL};
    PyObject *name, *flops = Py_None, *nbytes = Py_None, *dtype = Py_None, *engine = Py_None;
    PyObject *category = Py_None, *rargs = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|OOOOOO:Region", kw, &name, &flops, &nbytes, &dtype,
                                     &engine, &category, &rargs))
        return -1;
    if (g_intern == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "collectors.runtime._cregion is not configured");
        return -1;
    }
    int64_t fbits, bbits, neg;
    if (number_bits(flops, "flops", &fbits) < 0 || number_bits(nbytes, "bytes", &bbits) < 0) return -1;
    /* intern checks the name, labels and args before it stores anything */
    PyObject *site = PyObject_CallFunctionObjArgs(g_intern, name, engine, dtype, category, rargs, NULL);
    if (site == NULL) return -1;
    long long sid = PyLong_AsLongLong(site);
    Py_DECREF(site);
    if (sid == -1 && PyErr_Occurred()) return -1;
    int with_numbers = flops != Py_None || nbytes != Py_None;
    if (site_neg(sid, with_numbers, &neg) < 0) return -1;
    PyObject *sname = PyObject_Str(name);
    if (sname == NULL) return -1;
    self->site = sid;
    self->neg = neg;
    self->nwords = with_numbers ? 3 : 1;
    self->fbits = fbits;
    self->bbits = bbits;
    Py_XSETREF(self->name, sname);
    return 0;
}

static void
region_dealloc(RegionObject *self)
{
    /* For Python subclasses, subtype_dealloc has untracked it already (untracking twice is fine). */
    PyObject_GC_UnTrack(self);
    region_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
not_a_decorator(PyObject *self, PyObject *args, PyObject *kwds)
{
    PyErr_SetString(PyExc_TypeError,
                    "a region is a context manager; decorate functions with @traced or @traced('name')");
    return NULL;
}

static PyObject *
region_repr(RegionObject *self)
{
    return PyUnicode_FromFormat("Region(%R, site=%lld)", self->name ? self->name : Py_None, self->site);
}

static PyMemberDef region_members[] = {
    {"name", T_OBJECT, offsetof(RegionObject, name), READONLY, "The region's name."},
    {"site", T_LONGLONG, offsetof(RegionObject, site), READONLY, "Interned site id."},
    {"_neg", T_LONGLONG, offsetof(RegionObject, neg), READONLY, "Begin-event base value."},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject RegionType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "collectors.runtime._cregion.Region",
    .tp_doc = "A named region: a context manager, cheap to reuse from one call site.",
    .tp_basicsize = sizeof(RegionObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = region_new,
    .tp_traverse = (traverseproc)region_traverse,
    .tp_clear = (inquiry)region_clear,
    .tp_init = (initproc)region_init,
    .tp_dealloc = (destructor)region_dealloc,
    .tp_call = not_a_decorator,
    .tp_repr = (reprfunc)region_repr,
    .tp_members = region_members,
};

/* ------------------------------------------------------------------------------- Span */
static PyObject *
span_enter(SpanObject *self)
{
    if (record_begin(self->neg, 3, self->fbits, self->bbits) < 0) return NULL;
    return Py_NewRef(self);
}

static PyObject *
span_vc(SpanObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 0 || (kwnames && PyTuple_GET_SIZE(kwnames))) {
        PyErr_SetString(PyExc_TypeError,
                        "a region is a context manager; decorate functions with @traced or @traced('name')");
        return NULL;
    }
    return span_enter(self);
}

/* A Span from a Region's site and checked numbers (no Python-level checks needed). */
static PyObject *
span_make(RegionObject *base, int64_t fbits, int64_t bbits)
{
    int64_t neg;
    if (site_neg(base->site, 1, &neg) < 0) return NULL;
    SpanObject *sp = PyObject_New(SpanObject, &SpanType);
    if (sp == NULL) return NULL;
    sp->vectorcall = (vectorcallfunc)span_vc;
    sp->neg = neg;
    sp->site = base->site;
    sp->name = Py_XNewRef(base->name);
    sp->fbits = fbits;
    sp->bbits = bbits;
    return (PyObject *)sp;
}

static PyObject *
span_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kw[] = {"region", "flops", "bytes", NULL};
    PyObject *region, *flops = Py_None, *nbytes = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!|OO:Span", kw, &RegionType, &region, &flops, &nbytes))
        return NULL;
    int64_t fbits, bbits;
    if (number_bits(flops, "flops", &fbits) < 0 || number_bits(nbytes, "bytes", &bbits) < 0) return NULL;
    return span_make((RegionObject *)region, fbits, bbits);
}

static void
span_dealloc(SpanObject *self)
{
    Py_XDECREF(self->name);
    PyObject_Free(self);
}

static PyObject *
span_repr(SpanObject *self)
{
    PyObject *f = PyFloat_FromDouble(bits_value(self->fbits));
    PyObject *b = PyFloat_FromDouble(bits_value(self->bbits));
    PyObject *r = NULL;
    if (f && b)
        r = PyUnicode_FromFormat("Span(%R, site=%lld, flops=%R, bytes=%R)", self->name ? self->name : Py_None,
                                 self->site, f, b);
    Py_XDECREF(f);
    Py_XDECREF(b);
    return r;
}

static PyObject *
span_get_flops(SpanObject *self, void *Py_UNUSED(closure))
{
    return PyFloat_FromDouble(bits_value(self->fbits));
}

static PyObject *
span_get_bytes(SpanObject *self, void *Py_UNUSED(closure))
{
    return PyFloat_FromDouble(bits_value(self->bbits));
}

static PyMemberDef span_members[] = {
    {"name", T_OBJECT, offsetof(SpanObject, name), READONLY, "The region's name."},
    {"site", T_LONGLONG, offsetof(SpanObject, site), READONLY, "Interned site id."},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef span_getset[] = {
    {"flops", (getter)span_get_flops, NULL, "This call's flops (NaN: not given).", NULL},
    {"bytes", (getter)span_get_bytes, NULL, "This call's bytes (NaN: not given).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject SpanType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "collectors.runtime._cregion.Span",
    .tp_doc = "Span(region, flops=None, bytes=None): one use of a region's site with its own numbers.",
    .tp_basicsize = sizeof(SpanObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(SpanObject, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_new = span_new,
    .tp_dealloc = (destructor)span_dealloc,
    .tp_repr = (reprfunc)span_repr,
    .tp_members = span_members,
    .tp_getset = span_getset,
};

/* Span.__enter__ in the type dict: binding returns the Span itself (calling it enters it); called
 * on the class (Span.__enter__(span)) it takes the span. */
static PyObject *
spanenter_get(PyObject *d, PyObject *obj, PyObject *type)
{
    if (obj == NULL || obj == Py_None) return Py_NewRef(d);
    if (!PyObject_TypeCheck(obj, &SpanType)) {
        PyErr_SetString(PyExc_TypeError, "Span.__enter__ needs a Span");
        return NULL;
    }
    return Py_NewRef(obj);
}

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
} SpanEnterObject;

static PyObject *
spanenter_vc(PyObject *d, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 1 || !PyObject_TypeCheck(args[0], &SpanType)
        || (kwnames && PyTuple_GET_SIZE(kwnames))) {
        PyErr_SetString(PyExc_TypeError, "Span.__enter__ takes exactly one Span");
        return NULL;
    }
    return span_enter((SpanObject *)args[0]);
}

static void
spanenter_dealloc(PyObject *d)
{
    PyObject_Free(d);
}

static PyTypeObject SpanEnterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "collectors.runtime._cregion.SpanEnter",
    .tp_doc = "Span.__enter__: binds to the span itself.",
    .tp_basicsize = sizeof(SpanEnterObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(SpanEnterObject, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_descr_get = (descrgetfunc)spanenter_get,
    .tp_dealloc = (destructor)spanenter_dealloc,
};

static PyObject *
spanenter_new(void)
{
    SpanEnterObject *d = PyObject_New(SpanEnterObject, &SpanEnterType);
    if (d == NULL) return NULL;
    d->vectorcall = (vectorcallfunc)spanenter_vc;
    return (PyObject *)d;
}

/* ------------------------------------------------------------------------------- Noop
 * One shared instance; its type's __enter__/__exit__ are Hooks (not descriptors), found and
 * called without binding: `with NOOP:` allocates nothing and records nothing. */
static PyTypeObject NoopType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "collectors.runtime._cregion.Noop",
    .tp_doc = "The shared object region() returns while no session records.",
    .tp_basicsize = sizeof(PyObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_call = not_a_decorator,
};

/* Put __enter__/__exit__ into a static type's dict after PyType_Ready. */
static int
set_hooks(PyTypeObject *type, PyObject *enter, PyObject *exit)
{
    int rc = 0;
    if (enter == NULL || exit == NULL || PyDict_SetItemString(type->tp_dict, "__enter__", enter) < 0
        || PyDict_SetItemString(type->tp_dict, "__exit__", exit) < 0)
        rc = -1;
    Py_XDECREF(enter);
    Py_XDECREF(exit);
    PyType_Modified(type);
    return rc;
}

static PyObject *
enterdescr_new(void)
{
    EnterDescrObject *d = PyObject_New(EnterDescrObject, &EnterDescrType);
    if (d == NULL) return NULL;
    d->vectorcall = (vectorcallfunc)enterdescr_vc;
    return (PyObject *)d;
}

/* ----------------------------------------------------------------------------- Traced
 * @traced in C: one vectorcall that checks the flag and calls the function directly when no
 * session records (no Python wrapper frame, no packing of arguments), or records its region
 * around the call.  A descriptor like a Python function, so it decorates methods too. */
typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *fn;
    RegionObject *region;
    PyObject *dict;
    PyObject *weakreflist;
} TracedObject;

static PyObject *
traced_vc(TracedObject *t, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (!g_on) return PyObject_Vectorcall(t->fn, args, nargsf, kwnames);
    PyObject *r = do_enter(t->region);
    if (r == NULL) return NULL;
    Py_DECREF(r);
    PyObject *res = PyObject_Vectorcall(t->fn, args, nargsf, kwnames);
    if (res == NULL) {
        /* Close the region and let the function's exception through unchanged. */
        PyObject *et, *ev, *tb;
        PyErr_Fetch(&et, &ev, &tb);
        PyObject *x = do_exit();
        if (x == NULL) PyErr_Clear();
        else Py_DECREF(x);
        PyErr_Restore(et, ev, tb);
        return NULL;
    }
    PyObject *x = do_exit();
    if (x == NULL) {
        Py_DECREF(res);
        return NULL;
    }
    Py_DECREF(x);
    return res;
}

static PyObject *
traced_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *fn, *region;
    static char *kw[] = {"fn", "region", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO!:Traced", kw, &fn, &RegionType, &region)) return NULL;
    if (!PyCallable_Check(fn)) {
        PyErr_SetString(PyExc_TypeError, "Traced needs a callable");
        return NULL;
    }
    TracedObject *t = (TracedObject *)type->tp_alloc(type, 0);
    if (t == NULL) return NULL;
    t->vectorcall = (vectorcallfunc)traced_vc;
    t->fn = Py_NewRef(fn);
    t->region = (RegionObject *)Py_NewRef(region);
    return (PyObject *)t;
}

static int
traced_traverse(TracedObject *t, visitproc visit, void *arg)
{
    Py_VISIT(t->fn);
    Py_VISIT(t->region);
    Py_VISIT(t->dict);
    return 0;
}

static int
traced_clear(TracedObject *t)
{
    Py_CLEAR(t->fn);
    Py_CLEAR(t->region);
    Py_CLEAR(t->dict);
    return 0;
}

static void
traced_dealloc(TracedObject *t)
{
    PyObject_GC_UnTrack(t);
    if (t->weakreflist != NULL) PyObject_ClearWeakRefs((PyObject *)t);
    traced_clear(t);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

static PyObject *
traced_descr_get(PyObject *self, PyObject *obj, PyObject *type)
{
    if (obj == NULL || obj == Py_None) return Py_NewRef(self);
    return PyMethod_New(self, obj);
}

static PyObject *
traced_repr(TracedObject *t)
{
    return PyUnicode_FromFormat("<traced %R in %R>", t->fn, (PyObject *)t->region);
}

static PyMemberDef traced_members[] = {
    {"region", T_OBJECT, offsetof(TracedObject, region), READONLY, "The region every call records."},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef traced_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject TracedType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "collectors.runtime._cregion.Traced",
    .tp_doc = "A function whose calls are regions (made by @traced).",
    .tp_basicsize = sizeof(TracedObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_vectorcall_offset = offsetof(TracedObject, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_new = traced_new,
    .tp_traverse = (traverseproc)traced_traverse,
    .tp_clear = (inquiry)traced_clear,
    .tp_dealloc = (destructor)traced_dealloc,
    .tp_descr_get = traced_descr_get,
    .tp_repr = (reprfunc)traced_repr,
    .tp_dictoffset = offsetof(TracedObject, dict),
    .tp_weaklistoffset = offsetof(TracedObject, weakreflist),
    .tp_members = traced_members,
    .tp_getset = traced_getset,
    .tp_getattro = PyObject_GenericGetAttr,
    .tp_setattro = PyObject_GenericSetAttr,
};

/* ---------------------------------------------------------------------- module functions */
/* region(...) when the fast path does not apply: the shared Python logic, which also raises the
 * errors with their messages. */
static PyObject *
slow_region(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (g_slow_region == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "collectors.runtime._cregion is not configured");
        return NULL;
    }
    return PyObject_Vectorcall(g_slow_region, args, nargs, kwnames);
}

/* A number the fast path takes: what number_bits accepts (numpy scalars included).  A bad value
 * is left to the Python path, which raises with the same message. */
static inline int
fast_number(PyObject *v, int64_t *bits)
{
    if (number_bits(v, "number", bits) == 0) return 1;
    PyErr_Clear();
    return 0;
}

/* The site of (name, dtype, engine, category) by object identity: a small direct-mapped cache in
 * front of g_by_key, so a call site whose strings are constants (the usual case) finds its region
 * without building and hashing a tuple.  Entries own references to their keys: an address cannot
 * be reused by another string while it is cached. */
#define KEY_CACHE 64
typedef struct {
    PyObject *k[4];
    PyObject *region;
} KeyEntry;
static KeyEntry g_key_cache[KEY_CACHE];

static inline size_t
key_slot(PyObject *const *k)
{
    uintptr_t h = (uintptr_t)k[0] ^ ((uintptr_t)k[1] * 3) ^ ((uintptr_t)k[2] * 5) ^ ((uintptr_t)k[3] * 7);
    return (size_t)((h >> 4) ^ (h >> 12)) & (KEY_CACHE - 1);
}

/* Borrowed region for the key, or NULL (with an error set only on failure). */
static PyObject *
lookup_key(PyObject *const *k)
{
    KeyEntry *e = &g_key_cache[key_slot(k)];
    if (e->region != NULL && e->k[0] == k[0] && e->k[1] == k[1] && e->k[2] == k[2] && e->k[3] == k[3])
        return e->region;
    PyObject *key = PyTuple_Pack(4, k[0], k[1], k[2], k[3]);
    if (key == NULL) return NULL;
    PyObject *r = PyDict_GetItemWithError(g_by_key, key); /* borrowed */
    Py_DECREF(key);
    if (r == NULL) return NULL;
    KeyEntry old = *e;
    for (int i = 0; i < 4; i++) e->k[i] = Py_NewRef(k[i]);
    e->region = Py_NewRef(r);
    for (int i = 0; i < 4; i++) Py_XDECREF(old.k[i]);
    Py_XDECREF(old.region);
    return r; /* g_by_key and the cache keep it alive */
}

/* region(name, flops=None, bytes=None, dtype=None, engine=None, category=None, flow_from=None,
 * args=None).  Taken here: a bare name (its cached Region), and names with exact-str labels and
 * valid numbers (numpy scalars too) whose site is cached (the Region, or a Span with this call's
 * numbers).  Everything else (first use of a site, flow_from, args, bad values) goes to Python. */
static PyObject *
m_region(PyObject *m, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (!g_on) return Py_NewRef(g_noop);
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs == 1 && nkw == 0 && g_by_name != NULL) {
        PyObject *r = PyDict_GetItemWithError(g_by_name, args[0]); /* borrowed */
        if (r != NULL) return Py_NewRef(r);
        if (PyErr_Occurred()) return NULL;
        return slow_region(args, nargs, kwnames);
    }
    /* name, flops, bytes, dtype, engine, category */
    PyObject *v[6] = {NULL, Py_None, Py_None, Py_None, Py_None, Py_None};
    if (nargs < 1 || nargs > 6 || g_by_name == NULL || g_by_key == NULL) return slow_region(args, nargs, kwnames);
    for (Py_ssize_t i = 0; i < nargs; i++) v[i] = args[i];
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        int j = 1;
        while (j < 6 && key != s_kw[j]) j++;
        if (j == 6) { /* not interned, or flow_from/args/unknown */
            for (j = 1; j < 6; j++) {
                int eq = PyUnicode_Compare(key, s_kw[j]);
                if (eq == -1 && PyErr_Occurred()) return NULL;
                if (eq == 0) break;
            }
        }
        if (j == 6 || j < nargs) return slow_region(args, nargs, kwnames);
        v[j] = args[nargs + k];
    }
    PyObject *name = v[0];
    if (!PyUnicode_CheckExact(name)) return slow_region(args, nargs, kwnames);
    for (int j = 3; j < 6; j++)
        if (v[j] != Py_None && !PyUnicode_CheckExact(v[j])) return slow_region(args, nargs, kwnames);
    int64_t fbits, bbits;
    if (!fast_number(v[1], &fbits) || !fast_number(v[2], &bbits)) return slow_region(args, nargs, kwnames);
    PyObject *base; /* borrowed */
    if (v[3] == Py_None && v[4] == Py_None && v[5] == Py_None) {
        base = PyDict_GetItemWithError(g_by_name, name);
    }
    else {
        PyObject *k[4] = {name, v[3], v[4], v[5]};
        base = lookup_key(k);
    }
    if (base == NULL) {
        if (PyErr_Occurred()) return NULL;
        return slow_region(args, nargs, kwnames);
    }
    if (!PyObject_TypeCheck(base, &RegionType)) return slow_region(args, nargs, kwnames);
    if (v[1] == Py_None && v[2] == Py_None) return Py_NewRef(base);
    return span_make((RegionObject *)base, fbits, bbits);
}

static PyObject *
m_configure(PyObject *m, PyObject *args, PyObject *kwds)
{
    static char *kw[] = {"intern", "register", "slow_region", "by_name", "by_key", "time_bits", "metrics_flag",
                         NULL};
    PyObject *intern, *reg, *slow, *by_name, *by_key;
    int bits;
    long long flag;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOO!O!iL:configure", kw, &intern, &reg, &slow, &PyDict_Type,
                                     &by_name, &PyDict_Type, &by_key, &bits, &flag))
        return NULL;
    if (bits < 1 || bits > 62 || flag < 2 || (flag & (flag - 1)) || (flag * 2) > (INT64_MAX >> bits)) {
        PyErr_SetString(PyExc_ValueError, "time_bits or metrics_flag out of range");
        return NULL;
    }
    g_metrics_flag = flag;
    Py_INCREF(by_key);
    Py_XSETREF(g_by_key, by_key);
    Py_INCREF(intern);
    Py_XSETREF(g_intern, intern);
    Py_INCREF(reg);
    Py_XSETREF(g_register, reg);
    Py_INCREF(slow);
    Py_XSETREF(g_slow_region, slow);
    Py_INCREF(by_name);
    Py_XSETREF(g_by_name, by_name);
    g_time_bits = bits;
    Py_RETURN_NONE;
}

static PyObject *
m_enable(PyObject *m, PyObject *Py_UNUSED(ignored))
{
    g_gen++;
    g_on = 1;
    Py_RETURN_NONE;
}

static PyObject *
m_disable(PyObject *m, PyObject *Py_UNUSED(ignored))
{
    g_on = 0;
    g_gen++;
    Py_RETURN_NONE;
}

static PyObject *
m_take(PyObject *m, PyObject *arg)
{
    long long n = PyLong_AsLongLong(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    if (n < 0 || n > g_budget) Py_RETURN_FALSE;
    g_budget -= n;
    Py_RETURN_TRUE;
}

static PyObject *
m_set_budget(PyObject *m, PyObject *arg)
{
    long long n = PyLong_AsLongLong(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    g_budget = n < 0 ? 0 : n;
    Py_RETURN_NONE;
}

static PyObject *
m_budget(PyObject *m, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLongLong(g_budget);
}

static PyObject *
m_enabled(PyObject *m, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(g_on);
}

static PyObject *
m_current_buffer(PyObject *m, PyObject *Py_UNUSED(ignored))
{
    if (t_cache.gen != g_gen) return register_thread();
    return Py_NewRef(t_cache.tbuf);
}

static PyObject *
m_now(PyObject *m, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLongLong(now_ns());
}

static PyMethodDef module_methods[] = {
    {"region", (PyCFunction)(void (*)(void))m_region, METH_FASTCALL | METH_KEYWORDS,
     "region(name, ...): the cached Region for a bare name, the no-op object when disabled."},
    {"configure", (PyCFunction)(void (*)(void))m_configure, METH_VARARGS | METH_KEYWORDS,
     "Hand over the Python callbacks and caches: intern, register, slow_region, by_name, by_key, time_bits, "
     "metrics_flag."},
    {"enable", m_enable, METH_NOARGS, "Start recording into fresh per-thread buffers."},
    {"disable", m_disable, METH_NOARGS, "Stop recording."},
    {"enabled", m_enabled, METH_NOARGS, "Whether regions record."},
    {"take", m_take, METH_O, "take(nbytes) -> bool: draw from the session's memory budget."},
    {"set_budget", m_set_budget, METH_O, "set_budget(nbytes): the memory the session's buffers may use."},
    {"budget", m_budget, METH_NOARGS, "Bytes of the memory budget not yet drawn."},
    {"current_buffer", m_current_buffer, METH_NOARGS, "This thread's ThreadBuffer, registered on first use."},
    {"now", m_now, METH_NOARGS, "The clock regions read, in ns (time.perf_counter_ns's clock)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef cregion_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "collectors.runtime._cregion",
    .m_doc = "C hot path of the runtime SDK (see collectors/runtime/_native.py).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__cregion(void)
{
    if (PyType_Ready(&StreamType) < 0 || PyType_Ready(&HookType) < 0 || PyType_Ready(&EnterDescrType) < 0
        || PyType_Ready(&RegionType) < 0 || PyType_Ready(&NoopType) < 0 || PyType_Ready(&TracedType) < 0
        || PyType_Ready(&SpanType) < 0 || PyType_Ready(&SpanEnterType) < 0)
        return NULL;
    static const char *kwnames[6] = {"name", "flops", "bytes", "dtype", "engine", "category"};
    for (int i = 0; i < 6; i++) {
        s_kw[i] = PyUnicode_InternFromString(kwnames[i]);
        if (s_kw[i] == NULL) return NULL;
    }
    PyObject *exit_hook = (PyObject *)hook_new((vectorcallfunc)hook_exit_vc, NULL);
    if (exit_hook == NULL) return NULL;
    Py_INCREF(exit_hook); /* one reference for each type below */
    if (set_hooks(&RegionType, enterdescr_new(), exit_hook) < 0 || set_hooks(&SpanType, spanenter_new(), exit_hook) < 0
        || set_hooks(&NoopType, (PyObject *)hook_new((vectorcallfunc)hook_noop_enter_vc, NULL),
                     (PyObject *)hook_new((vectorcallfunc)hook_noop_exit_vc, NULL)) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&cregion_module);
    if (m == NULL) return NULL;
    g_noop = PyObject_New(PyObject, &NoopType);
    if (g_noop == NULL) goto fail;
    if (PyModule_AddObjectRef(m, "Stream", (PyObject *)&StreamType) < 0) goto fail;
    if (PyModule_AddObjectRef(m, "Region", (PyObject *)&RegionType) < 0) goto fail;
    if (PyModule_AddObjectRef(m, "Noop", (PyObject *)&NoopType) < 0) goto fail;
    if (PyModule_AddObjectRef(m, "Traced", (PyObject *)&TracedType) < 0) goto fail;
    if (PyModule_AddObjectRef(m, "Span", (PyObject *)&SpanType) < 0) goto fail;
    if (PyModule_AddObjectRef(m, "NOOP", g_noop) < 0) goto fail;
    if (PyModule_AddIntConstant(m, "INITIAL_CAPACITY", INITIAL_CAPACITY) < 0) goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
