/* faiss_shim.cpp: the extern "C" adapter over libfaiss (see faiss_shim.h). Each entry point
 * runs its FAISS calls inside guard(), which catches every exception and converts it once:
 * std::bad_alloc to ERR_NOMEM, anything else to the code the entry point names, with FAISS's
 * message (its "Error in <function> at <file>:<line>:" prefix cut off) in the caller's
 * buffer. Filters reach FAISS as an IDSelector that calls the C predicate; memory goes in
 * and out through IOReader/IOWriter adapters over the caller's bytes and callback. */
#include "index/faiss_shim.h"

#include <faiss/IndexFlatCodes.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/IndexScalarQuantizer.h>
#include <faiss/VectorTransform.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/impl/io.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <faiss/invlists/InvertedLists.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <cxxabi.h>
#include <new>
#include <omp.h>
#include <string>
#include <typeinfo>

extern "C" {
#include "core/err.h"
}

/* ---- a cap on C++ allocations while a snapshot is read -----------------------------------
 * FAISS sizes each vector from a length field before reading its elements (io_macros.h lets
 * a length reach 2^40), so a forged snapshot would allocate, and zero, terabytes before the
 * short read is noticed. While faiss_shim_deserialize reads, every C++ allocation of its
 * thread is capped (a larger one throws std::bad_alloc, which FAISS lets through). To see
 * them, the program's allocation functions are replaced by these, which are what the C++
 * runtime's own do (malloc and free); the aligned ones stay the runtime's. */
static thread_local size_t alloc_cap; /* 0: none */

static void *alloc_or_null(std::size_t n)
{
    if (alloc_cap && n > alloc_cap)
        return nullptr;
    return malloc(n ? n : 1);
}

static void *alloc_or_throw(std::size_t n)
{
    void *p = alloc_or_null(n);
    if (!p)
        throw std::bad_alloc();
    return p;
}

void *operator new(std::size_t n)
{
    return alloc_or_throw(n);
}
void *operator new[](std::size_t n)
{
    return alloc_or_throw(n);
}
void *operator new(std::size_t n, const std::nothrow_t &) noexcept
{
    return alloc_or_null(n);
}
void *operator new[](std::size_t n, const std::nothrow_t &) noexcept
{
    return alloc_or_null(n);
}
void operator delete(void *p) noexcept
{
    free(p);
}
void operator delete[](void *p) noexcept
{
    free(p);
}
void operator delete(void *p, std::size_t) noexcept
{
    free(p);
}
void operator delete[](void *p, std::size_t) noexcept
{
    free(p);
}
void operator delete(void *p, const std::nothrow_t &) noexcept
{
    free(p);
}
void operator delete[](void *p, const std::nothrow_t &) noexcept
{
    free(p);
}

struct faiss_shim {
    faiss::Index *index; /* what the factory built: the IVF, or transforms over it */
    faiss::IndexIVF *ivf;
};

namespace
{

/* A FAISS-side failure the shim raises itself, with the err.h code to report. */
struct shim_error {
    int code;
    std::string msg;
};

void set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
}

/* FAISS's text without "Error in <function> at <file>:<line>: ". */
const char *faiss_text(const char *what)
{
    if (strncmp(what, "Error in ", 9) != 0)
        return what;
    const char *at = strstr(what, " at ");
    const char *colon = at ? strchr(at + 4, ':') : nullptr;
    const char *rest = colon ? strstr(colon + 1, ": ") : nullptr;
    return rest ? rest + 2 : what;
}

/* Runs fn on the calling thread alone, converting whatever it throws; code is the code for a
 * FAISS exception. One OpenMP thread: a query is one vector, and on a busy machine FAISS's
 * spinning thread teams made training 10k vectors take 10x longer, not less. (The setting
 * belongs to the calling thread only.) */
template <typename F> int guard(int code, char *err, size_t errlen, F fn)
{
    omp_set_num_threads(1);
    try {
        fn();
        return 0;
    } catch (const shim_error &e) {
        set_err(err, errlen, e.msg.c_str());
        return e.code;
    } catch (const std::bad_alloc &) {
        set_err(err, errlen, "out of memory in FAISS");
        return ERR_NOMEM;
    } catch (const std::exception &e) {
        set_err(err, errlen, faiss_text(e.what()));
        return code;
    } catch (...) {
        set_err(err, errlen, "unknown FAISS failure");
        return code;
    }
}

/* The C predicate as an IDSelector. */
struct keep_selector : faiss::IDSelector {
    faiss_shim_keep_fn keep;
    void *ctx;
    keep_selector(faiss_shim_keep_fn k, void *c) : keep(k), ctx(c)
    {
    }
    bool is_member(idx_t id) const override
    {
        return keep(ctx, id) != 0;
    }
};

/* The IVF inside index if it is one of the kinds faiss_shim.h lists, else NULL. */
faiss::IndexIVF *supported_ivf(faiss::Index *index)
{
    while (auto *pt = dynamic_cast<faiss::IndexPreTransform *>(index))
        index = pt->index;
    auto *ivf = dynamic_cast<faiss::IndexIVF *>(index);
    if (!ivf || ivf->nlist == 0 || !dynamic_cast<faiss::ArrayInvertedLists *>(ivf->invlists))
        return nullptr;
    const std::type_info &t = typeid(*ivf);
    if (t == typeid(faiss::IndexIVFFlat) || t == typeid(faiss::IndexIVFPQ) ||
        t == typeid(faiss::IndexIVFScalarQuantizer))
        return ivf;
    return nullptr;
}

/* The class name of index, readable ("faiss::IndexHNSWFlat"). */
std::string class_name(const faiss::Index *index)
{
    const char *mangled = typeid(*index).name();
    int status = 0;
    char *s = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
    std::string name = s ? s : mangled;
    free(s);
    return name;
}

/* Takes ownership of index: a shim if it is a supported kind, else deletes it and throws
 * code. */
faiss_shim *adopt(faiss::Index *index, const std::string &what, int code)
{
    faiss::IndexIVF *ivf = supported_ivf(index);
    if (!ivf) {
        std::string name = class_name(index);
        delete index;
        throw shim_error{code, what +
                                   " is not a supported IVF index (IVF<n>, n >= 1, with Flat, "
                                   "PQ or SQ codes; FAISS built " +
                                   name + ")"};
    }
    return new faiss_shim{index, ivf};
}

faiss::SearchParametersIVF search_params(const faiss_shim *s, size_t nprobe,
                                         const keep_selector *sel)
{
    faiss::SearchParametersIVF p;
    p.nprobe = std::min(std::max(nprobe, size_t(1)), s->ivf->nlist);
    p.max_codes = 0;
    p.sel = sel ? const_cast<keep_selector *>(sel) : nullptr;
    return p;
}

/* Gives back the memory of lists that removal left much smaller than their capacity. */
void shrink_lists(faiss::IndexIVF *ivf)
{
    auto *al = static_cast<faiss::ArrayInvertedLists *>(ivf->invlists);
    for (size_t i = 0; i < al->nlist; i++) {
        if (al->ids[i].capacity() > al->ids[i].size() + al->ids[i].size() / 8 + 16) {
            al->ids[i].shrink_to_fit();
            al->codes[i].shrink_to_fit();
        }
    }
}

struct callback_writer : faiss::IOWriter {
    int (*write)(void *ctx, const void *p, size_t n);
    void *ctx;
    size_t operator()(const void *ptr, size_t size, size_t nitems) override
    {
        if (size * nitems == 0)
            return nitems; /* FAISS writes empty vectors from a null data() */
        int rc = write(ctx, ptr, size * nitems);
        if (rc < 0)
            throw shim_error{rc, "snapshot write failed"};
        return nitems;
    }
};

/* Reads from caller's bytes, never past their end (a short read makes FAISS throw). */
struct span_reader : faiss::IOReader {
    const uint8_t *p;
    size_t len, pos = 0;
    span_reader(const void *data, size_t n) : p(static_cast<const uint8_t *>(data)), len(n)
    {
    }
    size_t operator()(void *ptr, size_t size, size_t nitems) override
    {
        if (size == 0)
            return 0;
        size_t n = std::min(nitems, (len - pos) / size);
        if (n)
            memcpy(ptr, p + pos, n * size);
        pos += n * size;
        return n;
    }
};

size_t list_bytes(const faiss::IndexIVF *ivf)
{
    auto *al = static_cast<const faiss::ArrayInvertedLists *>(ivf->invlists);
    size_t n = al->nlist * 2 * sizeof(std::vector<uint8_t>);
    for (size_t i = 0; i < al->nlist; i++)
        n += al->codes[i].capacity() + al->ids[i].capacity() * sizeof(faiss::Index::idx_t);
    return n;
}

size_t quantizer_bytes(const faiss::IndexIVF *ivf)
{
    if (auto *fc = dynamic_cast<const faiss::IndexFlatCodes *>(ivf->quantizer))
        return fc->codes.capacity();
    return size_t(ivf->quantizer->ntotal) * ivf->d * sizeof(float) * 2; /* graph etc.: a guess */
}

size_t codec_bytes(const faiss::IndexIVF *ivf)
{
    if (auto *pq = dynamic_cast<const faiss::IndexIVFPQ *>(ivf))
        return (pq->pq.centroids.capacity() + pq->pq.transposed_centroids.capacity() +
                pq->pq.centroids_sq_lengths.capacity() + pq->precomputed_table.size()) *
               sizeof(float);
    if (auto *sq = dynamic_cast<const faiss::IndexIVFScalarQuantizer *>(ivf))
        return sq->sq.trained.capacity() * sizeof(float);
    return 0;
}

size_t transform_bytes(const faiss::Index *index)
{
    size_t n = 0;
    while (auto *pt = dynamic_cast<const faiss::IndexPreTransform *>(index)) {
        for (const faiss::VectorTransform *vt : pt->chain)
            if (auto *lt = dynamic_cast<const faiss::LinearTransform *>(vt))
                n += (lt->A.capacity() + lt->b.capacity()) * sizeof(float);
        index = pt->index;
    }
    return n;
}

/* FAISS's factory takes its numbers as given: PQ0 divides by zero (SIGFPE, no exception),
 * IVF<huge> or PQ<m>x<huge> allocate without bound. Every number must be 1 to
 * MAX_FACTORY_NUMBER, a PQ's bits per code (after 'x') at most 16. */
constexpr unsigned long MAX_FACTORY_NUMBER = 1ul << 20;

bool factory_numbers_ok(const char *f)
{
    for (const char *p = f; *p;) {
        if (*p < '0' || *p > '9') {
            p++;
            continue;
        }
        bool bits = p > f && p[-1] == 'x';
        unsigned long v = 0;
        for (; *p >= '0' && *p <= '9'; p++)
            v = v > MAX_FACTORY_NUMBER ? v : v * 10 + unsigned(*p - '0');
        if (v < 1 || v > (bits ? 16 : MAX_FACTORY_NUMBER))
            return false;
    }
    return true;
}

} // namespace

extern "C" {

int faiss_shim_create(const char *factory, uint32_t dim, int ip, faiss_shim **out, char *err,
                      size_t errlen)
{
    *out = nullptr;
    std::string what = std::string("factory string '") + factory + "'";
    return guard(ERR_INVAL, err, errlen, [&] {
        faiss::MetricType m = ip ? faiss::METRIC_INNER_PRODUCT : faiss::METRIC_L2;
        if (!factory_numbers_ok(factory))
            throw shim_error{ERR_INVAL, what + ": its numbers must be 1 to " +
                                            std::to_string(MAX_FACTORY_NUMBER) +
                                            " (PQ bits, after 'x', at most 16)"};
        faiss::Index *index;
        try {
            index = faiss::index_factory(int(dim), factory, m);
        } catch (const faiss::FaissException &e) {
            throw shim_error{ERR_INVAL, what + ": " + faiss_text(e.what())};
        }
        *out = adopt(index, what, ERR_INVAL);
        /* Polysemous training (minutes on 10k vectors) only serves Hamming pre-filtering,
         * which searches here never turn on. */
        if (auto *pq = dynamic_cast<faiss::IndexIVFPQ *>((*out)->ivf))
            pq->do_polysemous_training = false;
    });
}

void faiss_shim_free(faiss_shim *s)
{
    if (s)
        delete s->index;
    delete s;
}

int faiss_shim_is_trained(const faiss_shim *s)
{
    return s->index->is_trained;
}

size_t faiss_shim_ntotal(const faiss_shim *s)
{
    return size_t(s->index->ntotal);
}

size_t faiss_shim_nlist(const faiss_shim *s)
{
    return s->ivf->nlist;
}

size_t faiss_shim_train_size(const faiss_shim *s)
{
    size_t clusters = s->ivf->nlist;
    if (auto *pq = dynamic_cast<const faiss::IndexIVFPQ *>(s->ivf))
        clusters = std::max(clusters, pq->pq.ksub);
    return std::max(size_t(1000), 39 * clusters);
}

size_t faiss_shim_memory(const faiss_shim *s)
{
    return sizeof(*s) + list_bytes(s->ivf) + quantizer_bytes(s->ivf) + codec_bytes(s->ivf) +
           transform_bytes(s->index);
}

int faiss_shim_train(faiss_shim *s, size_t n, const float *x, char *err, size_t errlen)
{
    return guard(ERR_BACKEND, err, errlen, [&] {
        if (s->index->is_trained)
            throw shim_error{ERR_INVAL, "index is already trained"};
        if (n == 0)
            throw shim_error{ERR_INVAL, "no training vectors"};
        s->index->train(faiss::Index::idx_t(n), x);
    });
}

int faiss_shim_add(faiss_shim *s, size_t n, const float *x, const int64_t *labels, char *err,
                   size_t errlen)
{
    return guard(ERR_BACKEND, err, errlen, [&] {
        if (!s->index->is_trained)
            throw shim_error{ERR_INVAL, "index is not trained"};
        for (size_t i = 0; i < n; i++)
            if (labels[i] < 0)
                throw shim_error{ERR_INVAL, "negative label"};
        static_assert(sizeof(faiss::Index::idx_t) == sizeof(int64_t), "FAISS labels are int64");
        s->index->add_with_ids(faiss::Index::idx_t(n), x,
                               reinterpret_cast<const faiss::Index::idx_t *>(labels));
    });
}

int faiss_shim_remove(faiss_shim *s, faiss_shim_keep_fn keep, void *ctx, size_t *removed, char *err,
                      size_t errlen)
{
    *removed = 0;
    return guard(ERR_BACKEND, err, errlen, [&] {
        keep_selector sel(keep, ctx);
        *removed = s->index->remove_ids(sel);
        shrink_lists(s->ivf);
    });
}

void faiss_shim_each_label(const faiss_shim *s, void (*visit)(void *ctx, int64_t label), void *ctx)
{
    const auto *al = static_cast<const faiss::ArrayInvertedLists *>(s->ivf->invlists);
    for (size_t i = 0; i < al->nlist; i++)
        for (faiss::Index::idx_t label : al->ids[i])
            visit(ctx, int64_t(label));
}

int faiss_shim_search(const faiss_shim *s, const float *q, size_t k, size_t nprobe,
                      faiss_shim_keep_fn keep, void *ctx, float *dist, int64_t *labels, char *err,
                      size_t errlen)
{
    return guard(ERR_BACKEND, err, errlen, [&] {
        if (k == 0)
            throw shim_error{ERR_INVAL, "k must be positive"};
        keep_selector sel(keep, ctx);
        faiss::SearchParametersIVF p = search_params(s, nprobe, keep ? &sel : nullptr);
        s->index->search(1, q, faiss::Index::idx_t(k), dist,
                         reinterpret_cast<faiss::Index::idx_t *>(labels), &p);
    });
}

int faiss_shim_range(const faiss_shim *s, const float *q, float radius, size_t nprobe,
                     faiss_shim_keep_fn keep, void *ctx, float **dist, int64_t **labels, size_t *n,
                     char *err, size_t errlen)
{
    *dist = nullptr;
    *labels = nullptr;
    *n = 0;
    return guard(ERR_BACKEND, err, errlen, [&] {
        keep_selector sel(keep, ctx);
        faiss::SearchParametersIVF p = search_params(s, nprobe, keep ? &sel : nullptr);
        faiss::RangeSearchResult res(1);
        s->index->range_search(1, q, radius, &res, &p);
        size_t hits = res.lims[1];
        float *d = static_cast<float *>(malloc(hits * sizeof(float) + 1));
        int64_t *l = static_cast<int64_t *>(malloc(hits * sizeof(int64_t) + 1));
        if (!d || !l) {
            free(d);
            free(l);
            throw std::bad_alloc();
        }
        memcpy(d, res.distances, hits * sizeof(float));
        memcpy(l, res.labels, hits * sizeof(int64_t));
        *dist = d;
        *labels = l;
        *n = hits;
    });
}

int faiss_shim_serialize(const faiss_shim *s, int (*write)(void *ctx, const void *p, size_t n),
                         void *ctx, char *err, size_t errlen)
{
    return guard(ERR_BACKEND, err, errlen, [&] {
        callback_writer w;
        w.write = write;
        w.ctx = ctx;
        faiss::write_index(s->index, &w);
    });
}

int faiss_shim_deserialize(const void *p, size_t len, uint32_t dim, int ip, faiss_shim **out,
                           char *err, size_t errlen)
{
    *out = nullptr;
    return guard(ERR_CORRUPT, err, errlen, [&] {
        span_reader r(p, len);
        /* What FAISS builds from the bytes is their size again at most, plus the per-list
         * vectors' headers (48 bytes for each list's 8-byte size); the cap leaves room. The
         * IVFPQ table that read_index would compute is not in the bytes: it is computed
         * below, after the checks and outside the cap. */
        alloc_cap = 16 * len + (1 << 20);
        faiss::Index *index;
        try {
            index = faiss::read_index(&r, faiss::IO_FLAG_SKIP_PRECOMPUTE_TABLE);
        } catch (const std::bad_alloc &) {
            alloc_cap = 0;
            throw shim_error{ERR_CORRUPT, "FAISS index claims more memory than its bytes"};
        } catch (...) {
            alloc_cap = 0;
            throw;
        }
        alloc_cap = 0;
        faiss::MetricType m = ip ? faiss::METRIC_INNER_PRODUCT : faiss::METRIC_L2;
        if (index->d != int(dim) || index->metric_type != m || r.pos != len) {
            delete index;
            throw shim_error{ERR_CORRUPT, "FAISS index does not match its header"};
        }
        faiss_shim *s = adopt(index, "the snapshot's FAISS index", ERR_CORRUPT);
        if (!s->index->is_trained) {
            faiss_shim_free(s);
            throw shim_error{ERR_CORRUPT, "FAISS index in snapshot is not trained"};
        }
        auto *pq = dynamic_cast<faiss::IndexIVFPQ *>(s->ivf);
        if (pq && pq->by_residual) /* as read_index does when not told to skip it */
            pq->precompute_table();
        *out = s;
    });
}

} // extern "C"
