/* faiss_leaks.h: for the fuzz targets that reach FAISS (include it in one file of a target).
 * FAISS leaks what it was building when it throws halfway (read_index keeps the index it is
 * reading, index_factory the quantizer it made, in raw pointers): not ours to fix, and once
 * per refused snapshot or factory string. The only C++ allocations are FAISS's and the
 * shim's, so the LeakSanitizer suppression names the shim's operator new
 * (index/faiss_shim.cpp), which is all a fast unwind sees above them. */
#ifndef QUIVER_FAISS_LEAKS_H
#define QUIVER_FAISS_LEAKS_H

const char *__lsan_default_suppressions(void);

const char *__lsan_default_suppressions(void)
{
    return "leak:alloc_or_throw\n";
}

#endif
